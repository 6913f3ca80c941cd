package report

import (
	"time"

	"github.com/berth-dev/berth/internal/scan/match"
)

// Policy is the gate a scan must pass.
type Policy struct {
	// FailOn is the lowest severity that fails the scan.
	FailOn match.Severity `json:"failOn"`
	// FailOnUnknown makes findings without any severity rating fail too.
	// The Go vulnerability database rates nothing, so this decides whether
	// Go findings can fail a scan; berth's CLI defaults it to true.
	FailOnUnknown bool `json:"failOnUnknown"`
	// IgnoreUnfixed hides findings for which no fixed version exists
	// (malicious packages excepted).
	IgnoreUnfixed bool         `json:"ignoreUnfixed"`
	Ignores       []IgnoreRule `json:"ignores,omitempty"`
}

// Ignored is a finding an ignore rule accepted.
type Ignored struct {
	Finding match.Finding `json:"finding"`
	Rule    IgnoreRule    `json:"rule"`
}

// Verdict is the gate's outcome.
type Verdict struct {
	// Findings are the findings that still apply, sorted by severity.
	Findings []match.Finding `json:"findings"`
	// Failing counts the Findings at or above the threshold.
	Failing int `json:"failing"`
	// Ignored are findings accepted by a live ignore rule.
	Ignored []Ignored `json:"ignored,omitempty"`
	// Unfixed counts findings hidden by IgnoreUnfixed.
	Unfixed int `json:"unfixedHidden,omitempty"`
	// Expired are ignore rules past their date; they no longer apply.
	Expired []IgnoreRule `json:"expiredIgnores,omitempty"`
}

// Pass reports whether no finding reaches the threshold.
func (v *Verdict) Pass() bool { return v.Failing == 0 }

// Fails reports whether one finding fails the policy.
func (p *Policy) Fails(f *match.Finding) bool {
	if f.Rating.Severity == match.Unknown {
		return p.FailOnUnknown
	}
	return f.Rating.Severity >= p.FailOn
}

// Evaluate applies p to findings at time now.
func Evaluate(findings []match.Finding, p Policy, now time.Time) Verdict {
	v := Verdict{Findings: []match.Finding{}}
	var live []*IgnoreRule
	for i := range p.Ignores {
		r := &p.Ignores[i]
		if r.expired(now) {
			v.Expired = append(v.Expired, *r)
		} else {
			live = append(live, r)
		}
	}
next:
	for i := range findings {
		f := &findings[i]
		for _, r := range live {
			if r.covers(f) {
				v.Ignored = append(v.Ignored, Ignored{Finding: *f, Rule: *r})
				continue next
			}
		}
		// A malicious package never has a fix; it is never hidden as unfixed.
		if p.IgnoreUnfixed && !f.HasFix() && !f.Malicious {
			v.Unfixed++
			continue
		}
		v.Findings = append(v.Findings, *f)
		if p.Fails(f) {
			v.Failing++
		}
	}
	match.Sort(v.Findings)
	return v
}
