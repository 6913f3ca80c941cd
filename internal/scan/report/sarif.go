package report

import (
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/berth-dev/berth/internal/scan/match"
)

// SARIF 2.1.0 types: only what berth writes.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string         `json:"id"`
	Name             string         `json:"name,omitempty"`
	ShortDescription sarifText      `json:"shortDescription"`
	HelpURI          string         `json:"helpUri,omitempty"`
	Help             *sarifText     `json:"help,omitempty"`
	Properties       map[string]any `json:"properties,omitempty"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	RuleIndex  int             `json:"ruleIndex"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations"`
	Properties map[string]any  `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

// securitySeverity is the number code-scanning tools sort by.
var securitySeverity = map[match.Severity]string{
	match.Critical: "9.5", match.High: "8.0", match.Medium: "5.5", match.Low: "2.0", match.Unknown: "0.0",
}

// WriteSARIF writes the findings that apply as a SARIF 2.1.0 log: one rule
// per advisory, one result per affected package.
func WriteSARIF(w io.Writer, r *Report) error {
	driver := sarifDriver{Name: "berth", Version: r.ToolVersion, InformationURI: "https://github.com/berth-dev/berth", Rules: []sarifRule{}}
	index := map[string]int{}
	results := []sarifResult{}
	for _, f := range r.Verdict.Findings {
		i, ok := index[f.ID]
		if !ok {
			i = len(driver.Rules)
			index[f.ID] = i
			sev := securitySeverity[f.Rating.Severity]
			if f.Rating.Score > 0 {
				sev = fmt.Sprintf("%.1f", f.Rating.Score)
			}
			desc := f.Summary
			if desc == "" {
				desc = f.ID
			}
			rule := sarifRule{
				ID:               f.ID,
				Name:             "Vulnerability",
				ShortDescription: sarifText{Text: desc},
				HelpURI:          f.URL,
				Properties: map[string]any{
					"security-severity": sev,
					"tags":              []string{"security", "vulnerability", f.Rating.Severity.String()},
				},
			}
			if len(f.Aliases) > 0 {
				rule.Help = &sarifText{Text: "Aliases: " + strings.Join(f.Aliases, ", ")}
			}
			driver.Rules = append(driver.Rules, rule)
		}
		fix := "no fixed version is published"
		if f.HasFix() {
			fix = "fixed in " + strings.Join(f.Fixed, ", ")
		}
		// A relative URI reference, escaped: image paths may hold anything.
		uri := (&url.URL{Path: strings.TrimPrefix(f.Package.Path, "/")}).String()
		if uri == "" {
			uri = (&url.URL{Path: r.Image}).String()
		}
		results = append(results, sarifResult{
			RuleID:    f.ID,
			RuleIndex: i,
			Level:     sarifLevel(&r.Policy, &f),
			Message: sarifText{Text: fmt.Sprintf("%s %s %s is affected by %s (%s): %s; %s",
				f.Package.Ecosystem, f.Package.Name, f.Package.Version, f.ID, f.Rating.Severity, f.Summary, fix)},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: uri}}}},
			Properties: map[string]any{
				"image":            r.Image,
				"layer":            f.Package.Layer,
				"package":          f.Package.Name,
				"installedVersion": f.Package.Version,
				"fixedVersions":    f.Fixed,
				"purl":             f.Package.PURL,
			},
		})
	}
	return encode(w, sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{{Tool: sarifTool{Driver: driver}, Results: results}},
	})
}

// sarifLevel is "error" for findings that fail the gate, "warning" or
// "note" below it.
func sarifLevel(p *Policy, f *match.Finding) string {
	switch {
	case p.Fails(f):
		return "error"
	case f.Rating.Severity >= match.Medium:
		return "warning"
	}
	return "note"
}
