package policy

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/manifest"
)

// Severity ranks how bad a violation is.
type Severity string

// Severities, from most to least severe.
const (
	SeverityCritical Severity = "critical"
	SeverityHigh     Severity = "high"
	SeverityMedium   Severity = "medium"
	SeverityLow      Severity = "low"
)

// rank orders severities; higher is worse, 0 is unknown.
func (s Severity) rank() int {
	switch s {
	case SeverityCritical:
		return 4
	case SeverityHigh:
		return 3
	case SeverityMedium:
		return 2
	case SeverityLow:
		return 1
	}
	return 0
}

// AtLeast reports whether s is as severe as threshold or more.
func (s Severity) AtLeast(threshold Severity) bool { return s.rank() >= threshold.rank() }

// ParseSeverity checks a severity name.
func ParseSeverity(s string) (Severity, error) {
	v := Severity(strings.ToLower(s))
	if v.rank() == 0 {
		return "", fmt.Errorf("unknown severity %q (want critical, high, medium or low)", s)
	}
	return v, nil
}

// Mode says what a rule's violations do.
type Mode string

// Modes.
const (
	// ModeEnforce rejects the revision.
	ModeEnforce Mode = "enforce"
	// ModeWarn reports without blocking.
	ModeWarn Mode = "warn"
	// ModeOff disables the rule.
	ModeOff Mode = "off"
)

func (m Mode) valid() bool { return m == ModeEnforce || m == ModeWarn || m == ModeOff }

// Violation is one rule failing on one object.
type Violation struct {
	// RuleID is the rule's stable ID, e.g. "image-latest-tag".
	RuleID string `json:"ruleID"`
	// Severity is the rule's severity (possibly overridden by config).
	Severity Severity `json:"severity"`
	// Mode is enforce or warn (off rules produce no violations).
	Mode Mode `json:"mode"`
	// Object is the object's ID ("group/Kind namespace/name").
	Object string `json:"object"`
	// Source is where the object was read from; RefineLines moves Line to
	// the offending field when the file can be read.
	Source manifest.Source `json:"source"`
	// Field is the offending field's path in the object
	// ("spec.template.spec.containers[0].image"), empty for the whole object.
	Field string `json:"field,omitempty"`
	// Message says what is wrong; it never contains a secret value.
	Message string `json:"message"`
	// Fix says how to fix it.
	Fix string `json:"fix"`
}

// String renders "file:line: [rule] object: message".
func (v Violation) String() string {
	return fmt.Sprintf("%s: [%s] %s: %s", v.Source, v.RuleID, v.Object, v.Message)
}

// ExceptionNotice reports an exception that was used or has expired.
type ExceptionNotice struct {
	Exception Exception `json:"exception"`
	// Expired reports whether the exception is past its expiry date and so
	// no longer suppresses anything.
	Expired bool `json:"expired"`
	// Suppressed counts the violations the exception suppressed.
	Suppressed int `json:"suppressed"`
}

// Report is the outcome of Evaluate.
type Report struct {
	// Violations are sorted by file, line, rule and object.
	Violations []Violation `json:"violations"`
	// Exceptions lists every configured exception that matched something
	// or has expired.
	Exceptions []ExceptionNotice `json:"exceptions,omitempty"`
	// Objects is the number of objects evaluated.
	Objects int `json:"objects"`
}

// Blocked reports whether any violation is in enforce mode: the revision
// must not be applied.
func (r *Report) Blocked() bool { return len(r.Enforced()) > 0 }

// Enforced returns the enforce-mode violations.
func (r *Report) Enforced() []Violation { return r.byMode(ModeEnforce) }

// Warnings returns the warn-mode violations.
func (r *Report) Warnings() []Violation { return r.byMode(ModeWarn) }

func (r *Report) byMode(m Mode) []Violation {
	var out []Violation
	for _, v := range r.Violations {
		if v.Mode == m {
			out = append(out, v)
		}
	}
	return out
}

// Failing returns the enforce-mode violations of severity threshold or worse:
// what makes `berth check --fail-on threshold` exit 1.
func (r *Report) Failing(threshold Severity) []Violation {
	var out []Violation
	for _, v := range r.Violations {
		if v.Mode == ModeEnforce && v.Severity.AtLeast(threshold) {
			out = append(out, v)
		}
	}
	return out
}

// ExpiredExceptions returns the exceptions past their expiry date.
func (r *Report) ExpiredExceptions() []Exception {
	var out []Exception
	for _, n := range r.Exceptions {
		if n.Expired {
			out = append(out, n.Exception)
		}
	}
	return out
}

// Summary is a one-paragraph description of the enforce-mode violations,
// suitable for a Stalled condition message (bounded to the first ten).
func (r *Report) Summary() string {
	enf := r.Enforced()
	if len(enf) == 0 {
		return "no policy violations"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d policy violation(s) block this revision:", len(enf))
	for i, v := range enf {
		if i == 10 {
			fmt.Fprintf(&b, " ... and %d more", len(enf)-10)
			break
		}
		fmt.Fprintf(&b, " [%s] %s (%s): %s;", v.RuleID, v.Object, v.Source, v.Message)
	}
	return strings.TrimSuffix(b.String(), ";")
}

// Option changes one Evaluate call.
type Option func(*evalOptions)

type evalOptions struct {
	now        time.Time
	resolution *Resolution
	// byTag holds objects whose images run as written, never pinned by
	// the agent (Helm hooks): a resolved tag does not count as a digest.
	byTag map[*manifest.Object]bool
}

// WithNow sets the time exceptions are judged against (default time.Now).
func WithNow(t time.Time) Option { return func(o *evalOptions) { o.now = t } }

// WithResolution passes the outcome of Resolver.Resolve, so the
// image-tag-moved rule can report tags that moved.
func WithResolution(r *Resolution) Option { return func(o *evalOptions) { o.resolution = r } }

// finding is what a rule's check returns before modes and exceptions apply.
type finding struct {
	obj     *manifest.Object
	message string
	// field is the path of the offending field inside the object
	// ("spec.template.spec.containers[0].image"); "" for the whole object.
	field string
}

// evalContext is what rule checks see.
type evalContext struct {
	cfg *Config
	opt evalOptions
}

// Evaluate runs every enabled rule over objs with cfg and returns the
// report. It does no I/O and does not modify objs; ctx is checked between
// objects so a huge revision can be cancelled.
func Evaluate(ctx context.Context, objs []manifest.Object, cfg Config, opts ...Option) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := evalOptions{now: time.Now()}
	for _, f := range opts {
		f(&o)
	}
	ec := &evalContext{cfg: &cfg, opt: o}
	rules := enabledRules(&cfg)
	ex := newExceptionSet(cfg.Exceptions, o.now)
	rep := &Report{Objects: len(objs), Violations: []Violation{}}
	emit := func(r *Rule, fs []finding) {
		for _, f := range fs {
			id := f.obj.ID()
			if ex.suppress(r.ID, id) {
				continue
			}
			rep.Violations = append(rep.Violations, Violation{
				RuleID: r.ID, Severity: cfg.severity(r), Mode: cfg.mode(r),
				Object: id, Source: f.obj.Source, Field: f.field, Message: f.message, Fix: r.Fix,
			})
		}
	}
	for i := range objs {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("evaluating policy: %w", err)
			}
		}
		obj := &objs[i]
		if obj.Object == nil {
			continue
		}
		pod, err := podOf(obj)
		if err != nil {
			return nil, &manifest.Error{Source: obj.Source, Err: err}
		}
		for _, r := range rules {
			if r.check == nil {
				continue
			}
			emit(r, r.check(ec, obj, pod))
		}
	}
	for _, r := range rules {
		if r.checkAll != nil {
			emit(r, r.checkAll(ec, objs))
		}
	}
	rep.Exceptions = ex.notices()
	rep.sort()
	return rep, nil
}

// sort orders violations by file, line, rule and object.
func (r *Report) sort() {
	sort.SliceStable(r.Violations, func(i, j int) bool {
		a, b := r.Violations[i], r.Violations[j]
		if a.Source.File != b.Source.File {
			return a.Source.File < b.Source.File
		}
		if a.Source.Line != b.Source.Line {
			return a.Source.Line < b.Source.Line
		}
		if a.RuleID != b.RuleID {
			return a.RuleID < b.RuleID
		}
		return a.Object < b.Object
	})
}
