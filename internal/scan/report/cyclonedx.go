package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/berth-dev/berth/internal/scan/match"
)

// WriteCycloneDX writes a CycloneDX 1.5 BOM: the image as the subject, every
// package as a component, and the findings that apply as vulnerabilities.
func WriteCycloneDX(w io.Writer, r *Report) error {
	bom := cdx.NewBOM()
	bom.SerialNumber = ""
	bom.Metadata = &cdx.Metadata{
		Timestamp: r.FinishedAt.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: "berth", Version: r.ToolVersion,
		}}},
		Component: &cdx.Component{
			BOMRef: "image", Type: cdx.ComponentTypeContainer, Name: r.Image, Version: r.Digest,
		},
	}
	comps := []cdx.Component{}
	refs := map[string]string{}
	for i, p := range r.Packages {
		ref := fmt.Sprintf("pkg-%d", i+1)
		refs[pkgKey(p.Name, p.Version, p.Path)] = ref
		c := cdx.Component{
			BOMRef:     ref,
			Type:       cdx.ComponentTypeLibrary,
			Name:       p.Name,
			Version:    p.Version,
			PackageURL: p.PURL,
		}
		props := []cdx.Property{{Name: "berth:ecosystem", Value: p.Ecosystem}}
		if p.Path != "" {
			props = append(props, cdx.Property{Name: "berth:path", Value: p.Path})
		}
		if p.Layer != "" {
			props = append(props, cdx.Property{Name: "berth:layer", Value: p.Layer})
		}
		if p.Cataloger != "" {
			props = append(props, cdx.Property{Name: "berth:cataloger", Value: p.Cataloger})
		}
		c.Properties = &props
		comps = append(comps, c)
	}
	bom.Components = &comps

	vulns := []cdx.Vulnerability{}
	byID := map[string]int{}
	for _, f := range r.Verdict.Findings {
		ref, ok := refs[pkgKey(f.Package.Name, f.Package.Version, f.Package.Path)]
		if !ok {
			// A finding for a package the report does not list: add it.
			ref = fmt.Sprintf("pkg-%d", len(comps)+1)
			refs[pkgKey(f.Package.Name, f.Package.Version, f.Package.Path)] = ref
			comps = append(comps, cdx.Component{BOMRef: ref, Type: cdx.ComponentTypeLibrary, Name: f.Package.Name, Version: f.Package.Version, PackageURL: f.Package.PURL})
			bom.Components = &comps
		}
		if i, ok := byID[f.ID]; ok {
			aff := append(*vulns[i].Affects, cdx.Affects{Ref: ref})
			vulns[i].Affects = &aff
			continue
		}
		v := cdx.Vulnerability{
			BOMRef:      "vuln-" + f.ID,
			ID:          f.ID,
			Source:      &cdx.Source{Name: "OSV", URL: "https://osv.dev/vulnerability/" + f.ID},
			Description: f.Summary,
			Affects:     &[]cdx.Affects{{Ref: ref}},
		}
		rating := cdx.VulnerabilityRating{Severity: cdxSeverity(f.Rating.Severity), Vector: f.Rating.Vector}
		if f.Rating.Score > 0 {
			s := f.Rating.Score
			rating.Score = &s
			rating.Method = cdxMethod(f.Rating.Vector)
		}
		if f.Rating.Source != "cvss" && f.Rating.Source != "" {
			rating.Justification = "severity from " + f.Rating.Source
			rating.Score, rating.Method, rating.Vector = nil, cdx.ScoringMethodOther, ""
		}
		v.Ratings = &[]cdx.VulnerabilityRating{rating}
		if f.HasFix() {
			v.Recommendation = "upgrade to " + strings.Join(f.Fixed, " or ")
		}
		if len(f.Aliases) > 0 {
			refsList := make([]cdx.VulnerabilityReference, 0, len(f.Aliases))
			for _, a := range f.Aliases {
				refsList = append(refsList, cdx.VulnerabilityReference{ID: a, Source: &cdx.Source{URL: "https://osv.dev/vulnerability/" + a}})
			}
			v.References = &refsList
		}
		byID[f.ID] = len(vulns)
		vulns = append(vulns, v)
	}
	bom.Vulnerabilities = &vulns
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	if err := enc.EncodeVersion(bom, cdx.SpecVersion1_5); err != nil {
		return fmt.Errorf("writing CycloneDX: %w", err)
	}
	return nil
}

func pkgKey(name, version, path string) string { return name + "\x00" + version + "\x00" + path }

func cdxSeverity(s match.Severity) cdx.Severity {
	switch s {
	case match.Critical:
		return cdx.SeverityCritical
	case match.High:
		return cdx.SeverityHigh
	case match.Medium:
		return cdx.SeverityMedium
	case match.Low:
		return cdx.SeverityLow
	}
	return cdx.SeverityUnknown
}

func cdxMethod(vector string) cdx.ScoringMethod {
	switch {
	case strings.HasPrefix(vector, "CVSS:4"):
		return cdx.ScoringMethodCVSSv4
	case strings.HasPrefix(vector, "CVSS:3.1"):
		return cdx.ScoringMethodCVSSv31
	case strings.HasPrefix(vector, "CVSS:3"):
		return cdx.ScoringMethodCVSSv3
	case strings.HasPrefix(vector, "AV:"):
		return cdx.ScoringMethodCVSSv2
	}
	return cdx.ScoringMethodOther
}
