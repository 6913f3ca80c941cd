package match

import (
	"fmt"
	"strings"

	cvss20 "github.com/pandatix/go-cvss/20"
	cvss30 "github.com/pandatix/go-cvss/30"
	cvss31 "github.com/pandatix/go-cvss/31"
	cvss40 "github.com/pandatix/go-cvss/40"

	"github.com/berth-dev/berth/internal/vulndb"
)

// Severity ranks a finding. The zero value is Unknown.
type Severity int

// Severity levels, lowest first.
const (
	Unknown Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

// String is the upper-case name: "HIGH".
func (s Severity) String() string {
	if s < Unknown || s > Critical {
		return "UNKNOWN"
	}
	return severityNames[s]
}

// MarshalText writes the name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name, case-insensitively.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity reads LOW, MEDIUM, HIGH, CRITICAL or UNKNOWN, in any case.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(s, n) {
			return Severity(i), nil
		}
	}
	return Unknown, fmt.Errorf("unknown severity %q (want LOW, MEDIUM, HIGH or CRITICAL)", s)
}

// Rating is how a severity was decided.
type Rating struct {
	Severity Severity `json:"severity"`
	// Score is the CVSS base score computed from Vector, 0 if none.
	Score  float64 `json:"score,omitempty"`
	Vector string  `json:"vector,omitempty"`
	// Source says what decided Severity: "malicious", "ecosystem" (the
	// ecosystem's own word), "cvss" or "" when unknown.
	Source string `json:"source,omitempty"`
}

// rate decides an advisory's severity for one affected entry.
func rate(adv *vulndb.Advisory, aff *vulndb.Affected) Rating {
	var r Rating
	// The CVSS score is worth showing even when something else decides.
	vectors := append(append([]vulndb.Severity{}, aff.Severity...), adv.Severity...)
	if s, score, vec, ok := bestCVSS(vectors); ok {
		r = Rating{Severity: s, Score: score, Vector: vec, Source: "cvss"}
	}
	for _, word := range []string{aff.SpecificSeverity, adv.SpecificSeverity, ubuntuWord(vectors)} {
		if s, ok := fromWord(word); ok {
			r.Severity, r.Source = s, "ecosystem"
			break
		}
	}
	if strings.HasPrefix(adv.ID, "MAL-") {
		r.Severity, r.Source = Critical, "malicious"
	}
	return r
}

func ubuntuWord(sevs []vulndb.Severity) string {
	for _, s := range sevs {
		if s.Type == "Ubuntu" {
			return s.Score
		}
	}
	return ""
}

// fromWord maps ecosystem severity words. Debian's "unimportant" and
// Ubuntu's "negligible" are LOW; "not yet assigned" and the like are not a
// rating and fall through to CVSS.
func fromWord(w string) (Severity, bool) {
	switch strings.ToLower(strings.TrimSpace(w)) {
	case "critical":
		return Critical, true
	case "high", "important":
		return High, true
	case "medium", "moderate":
		return Medium, true
	case "low", "negligible", "unimportant":
		return Low, true
	}
	return Unknown, false
}

// bestCVSS computes the base score of the newest CVSS version present.
func bestCVSS(sevs []vulndb.Severity) (Severity, float64, string, bool) {
	for _, typ := range []string{"CVSS_V4", "CVSS_V3", "CVSS_V2"} {
		for _, s := range sevs {
			if s.Type != typ {
				continue
			}
			score, err := BaseScore(s.Score)
			if err != nil {
				continue
			}
			if typ == "CVSS_V2" {
				return fromV2(score), score, s.Score, true
			}
			return FromScore(score), score, s.Score, true
		}
	}
	return Unknown, 0, "", false
}

// BaseScore computes the CVSS base score of a v2, v3.0, v3.1 or v4.0 vector.
func BaseScore(vector string) (float64, error) {
	switch {
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		v, err := cvss40.ParseVector(vector)
		if err != nil {
			return 0, fmt.Errorf("parsing CVSS vector: %w", err)
		}
		return v.Score(), nil
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		v, err := cvss31.ParseVector(vector)
		if err != nil {
			return 0, fmt.Errorf("parsing CVSS vector: %w", err)
		}
		return v.BaseScore(), nil
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		v, err := cvss30.ParseVector(vector)
		if err != nil {
			return 0, fmt.Errorf("parsing CVSS vector: %w", err)
		}
		return v.BaseScore(), nil
	case strings.HasPrefix(vector, "AV:"):
		v, err := cvss20.ParseVector(vector)
		if err != nil {
			return 0, fmt.Errorf("parsing CVSS vector: %w", err)
		}
		return v.BaseScore(), nil
	}
	return 0, fmt.Errorf("unknown CVSS vector %q", vector)
}

// FromScore is the CVSS v3/v4 qualitative rating of a base score.
func FromScore(score float64) Severity {
	switch {
	case score >= 9.0:
		return Critical
	case score >= 7.0:
		return High
	case score >= 4.0:
		return Medium
	case score > 0:
		return Low
	}
	return Unknown
}

func fromV2(score float64) Severity {
	switch {
	case score >= 7.0:
		return High
	case score >= 4.0:
		return Medium
	case score > 0:
		return Low
	}
	return Unknown
}
