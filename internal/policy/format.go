package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// WriteText prints the report for people: one block per violation with
// rule, object, file:line, message and fix, then expired exceptions and a
// summary line.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for _, v := range r.Violations {
		level := "ERROR"
		if v.Mode == ModeWarn {
			level = "WARN"
		}
		field := ""
		if v.Field != "" {
			field = " (" + v.Field + ")"
		}
		fmt.Fprintf(tw, "%s\t%s [%s, %s] %s%s\n", v.Source, level, v.RuleID, v.Severity, v.Object, field)
		fmt.Fprintf(tw, "\t  %s\n", v.Message)
		fmt.Fprintf(tw, "\t  fix: %s\n", v.Fix)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	for _, n := range r.Exceptions {
		e := n.Exception
		if n.Expired {
			fmt.Fprintf(w, "EXPIRED exception for %s on %s (expired %s, reason: %s): it no longer suppresses anything\n", e.Rule, e.Object, e.Expires, e.Reason)
		}
	}
	_, err := fmt.Fprintf(w, "%d object(s) checked: %d violation(s) blocking, %d warning(s)\n", r.Objects, len(r.Enforced()), len(r.Warnings()))
	return err
}

// WriteJSON prints the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

// SARIF 2.1.0, the subset berth writes.
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri,omitempty"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID                   string         `json:"id"`
		Name                 string         `json:"name"`
		ShortDescription     sarifText      `json:"shortDescription"`
		Help                 sarifText      `json:"help"`
		DefaultConfiguration sarifRuleCfg   `json:"defaultConfiguration"`
		Properties           map[string]any `json:"properties,omitempty"`
	}
	sarifRuleCfg struct {
		Level string `json:"level"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifResult struct {
		RuleID    string          `json:"ruleId"`
		RuleIndex int             `json:"ruleIndex"`
		Level     string          `json:"level"`
		Message   sarifText       `json:"message"`
		Locations []sarifLocation `json:"locations"`
	}
	sarifLocation struct {
		PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
		LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
	}
	sarifPhysical struct {
		ArtifactLocation sarifArtifact `json:"artifactLocation"`
		Region           *sarifRegion  `json:"region,omitempty"`
	}
	sarifArtifact struct {
		URI       string `json:"uri"`
		URIBaseID string `json:"uriBaseId,omitempty"`
	}
	sarifRegion struct {
		StartLine int `json:"startLine"`
	}
	sarifLogical struct {
		FullyQualifiedName string `json:"fullyQualifiedName"`
		Kind               string `json:"kind,omitempty"`
	}
)

// securitySeverity maps severities to the CVSS-like scores code-scanning
// tools read from the "security-severity" rule property.
var securitySeverity = map[Severity]string{SeverityCritical: "9.5", SeverityHigh: "8.0", SeverityMedium: "5.5", SeverityLow: "2.0"}

func sarifLevel(m Mode) string {
	if m == ModeEnforce {
		return "error"
	}
	return "warning"
}

// WriteSARIF prints the report as a SARIF 2.1.0 log. Every rule is listed
// in the driver; file paths are relative to the checked directory
// (uriBaseId %SRCROOT%).
func (r *Report) WriteSARIF(w io.Writer, toolVersion string) error {
	rules := Rules()
	sort.Slice(rules, func(i, j int) bool { return rules[i].ID < rules[j].ID })
	index := map[string]int{}
	driver := sarifDriver{Name: "berth", Version: toolVersion, InformationURI: "https://github.com/berth-dev/berth/blob/main/docs/policy.md"}
	for i, rule := range rules {
		index[rule.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
			ID: rule.ID, Name: rule.ID,
			ShortDescription:     sarifText{Text: rule.Summary},
			Help:                 sarifText{Text: rule.Fix},
			DefaultConfiguration: sarifRuleCfg{Level: sarifLevel(rule.DefaultMode)},
			Properties: map[string]any{
				"tags":              []string{"security", rule.Family},
				"security-severity": securitySeverity[rule.Severity],
			},
		})
	}
	run := sarifRun{Tool: sarifTool{Driver: driver}, Results: []sarifResult{}}
	for _, v := range r.Violations {
		loc := sarifLocation{LogicalLocations: []sarifLogical{{FullyQualifiedName: v.Object, Kind: "object"}}}
		if v.Source.File != "" && !strings.Contains(v.Source.File, ":") {
			p := &sarifPhysical{ArtifactLocation: sarifArtifact{URI: v.Source.File, URIBaseID: "%SRCROOT%"}}
			if v.Source.Line > 0 {
				p.Region = &sarifRegion{StartLine: v.Source.Line}
			}
			loc.PhysicalLocation = p
		}
		run.Results = append(run.Results, sarifResult{
			RuleID: v.RuleID, RuleIndex: index[v.RuleID], Level: sarifLevel(v.Mode),
			Message:   sarifText{Text: fmt.Sprintf("%s: %s. Fix: %s", v.Object, v.Message, v.Fix)},
			Locations: []sarifLocation{loc},
		})
	}
	log := sarifLog{
		Schema:  "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{run},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("writing SARIF: %w", err)
	}
	return nil
}
