package vulndb

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"
)

// Advisory is one OSV record as stored for one package: only the affected
// entries that name this package are kept, and the free-text details are
// dropped so that the store loads fast.
type Advisory struct {
	ID        string
	Aliases   []string
	Summary   string
	Modified  time.Time
	Published time.Time
	// Severity are the record's CVSS vectors.
	Severity []Severity
	// SpecificSeverity is the record's database_specific severity word
	// (GHSA's "HIGH", ...), empty if none.
	SpecificSeverity string
	// URL is the advisory's primary web page.
	URL      string
	Affected []Affected
}

// Affected is one affected[] entry of an advisory.
type Affected struct {
	// Ecosystem is as the record spells it, release included ("Debian:12").
	Ecosystem string
	Name      string
	Severity  []Severity
	// SpecificSeverity is this entry's ecosystem_specific or
	// database_specific severity word (Debian urgency, Ubuntu priority ...).
	SpecificSeverity string
	Ranges           []Range
	Versions         []string
	// GOOS and GOARCH, for Go advisories whose every affected import is
	// limited to some platforms (ecosystem_specific.imports[].goos/goarch),
	// list those platforms; empty means all.
	GOOS   []string
	GOARCH []string
}

// BaseEcosystem is the ecosystem without its release suffix: "Debian:12" →
// "Debian", "Ubuntu:22.04:LTS" → "Ubuntu".
func BaseEcosystem(eco string) string {
	base, _, _ := strings.Cut(eco, ":")
	return base
}

var pypiSep = regexp.MustCompile(`[-_.]+`)

// NormalizeName returns the key under which a package name is stored: PyPI
// names are compared in their PEP 503 normal form, others as written.
func NormalizeName(ecosystem, name string) string {
	if BaseEcosystem(ecosystem) == "PyPI" {
		return pypiSep.ReplaceAllString(strings.ToLower(name), "-")
	}
	return name
}

// advisoriesFrom converts a parsed record into per-package advisories, keyed
// by base ecosystem and normalized name.
func advisoriesFrom(e *osvEntry) map[string]map[string]*Advisory {
	out := map[string]map[string]*Advisory{}
	for _, a := range e.Affected {
		if a.Package.Ecosystem == "" || a.Package.Name == "" {
			continue // purl-only entries are not matched
		}
		base := BaseEcosystem(a.Package.Ecosystem)
		name := NormalizeName(base, a.Package.Name)
		if out[base] == nil {
			out[base] = map[string]*Advisory{}
		}
		adv := out[base][name]
		if adv == nil {
			adv = &Advisory{
				ID:               e.ID,
				Aliases:          e.Aliases,
				Summary:          e.summary(),
				Modified:         e.Modified,
				Published:        e.Published,
				Severity:         e.Severity,
				SpecificSeverity: specificSeverity(e.DatabaseSpecific),
				URL:              primaryURL(e),
			}
			out[base][name] = adv
		}
		sev := specificSeverity(a.EcosystemSpecific)
		if sev == "" {
			sev = specificSeverity(a.DatabaseSpecific)
		}
		ranges := make([]Range, 0, len(a.Ranges))
		for _, r := range a.Ranges {
			if r.Type == "GIT" {
				continue // commit ranges need the source tree; packages carry versions
			}
			ranges = append(ranges, r)
		}
		goos, goarch := goPlatforms(a.EcosystemSpecific)
		adv.Affected = append(adv.Affected, Affected{
			Ecosystem:        a.Package.Ecosystem,
			Name:             a.Package.Name,
			Severity:         a.Severity,
			SpecificSeverity: sev,
			Ranges:           ranges,
			Versions:         a.Versions,
			GOOS:             goos,
			GOARCH:           goarch,
		})
	}
	return out
}

func primaryURL(e *osvEntry) string {
	for _, r := range e.References {
		if r.Type == "ADVISORY" {
			return r.URL
		}
	}
	if len(e.References) > 0 {
		return e.References[0].URL
	}
	return ""
}

// goPlatforms reads the Go database's ecosystem_specific.imports: when every
// import names the operating systems (or architectures) it is limited to,
// their union; otherwise nil (all platforms).
func goPlatforms(raw json.RawMessage) (goos, goarch []string) {
	if len(raw) == 0 {
		return nil, nil
	}
	var es struct {
		Imports []struct {
			GOOS   []string `json:"goos"`
			GOARCH []string `json:"goarch"`
		} `json:"imports"`
	}
	if json.Unmarshal(raw, &es) != nil || len(es.Imports) == 0 {
		return nil, nil
	}
	union := func(get func(i int) []string) []string {
		seen := map[string]bool{}
		var out []string
		for i := range es.Imports {
			l := get(i)
			if len(l) == 0 {
				return nil
			}
			for _, v := range l {
				if !seen[v] {
					seen[v] = true
					out = append(out, v)
				}
			}
		}
		return out
	}
	return union(func(i int) []string { return es.Imports[i].GOOS }), union(func(i int) []string { return es.Imports[i].GOARCH })
}
