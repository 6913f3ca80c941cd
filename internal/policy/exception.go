package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Exception suppresses one rule on matching objects until it expires.
type Exception struct {
	// Rule is the rule ID.
	Rule string `json:"rule"`
	// Object is an object ID as printed in violations ("apps/Deployment
	// prod/web"); "*" matches any characters (slashes included), "?" one.
	Object string `json:"object"`
	// Reason says why the exception exists; required.
	Reason string `json:"reason"`
	// Expires is the last day (YYYY-MM-DD, UTC) the exception applies;
	// required. From the next day on it suppresses nothing and is reported.
	Expires string `json:"expires"`
}

const dateLayout = "2006-01-02"

func (e Exception) validate() error {
	var errs []error
	if _, ok := registry[e.Rule]; !ok {
		errs = append(errs, fmt.Errorf("unknown rule %q", e.Rule))
	}
	if e.Object == "" {
		errs = append(errs, errors.New("object is required"))
	}
	if e.Reason == "" {
		errs = append(errs, errors.New("reason is required"))
	}
	if _, err := time.Parse(dateLayout, e.Expires); err != nil {
		errs = append(errs, fmt.Errorf("expires %q: want a date YYYY-MM-DD", e.Expires))
	}
	return errors.Join(errs...)
}

// ExpiredAt reports whether the exception no longer applies at now: it is
// valid through the whole of its expiry day (UTC).
func (e Exception) ExpiredAt(now time.Time) bool {
	d, err := time.Parse(dateLayout, e.Expires)
	if err != nil {
		return true
	}
	return !now.UTC().Before(d.AddDate(0, 0, 1))
}

// wildcard compiles a pattern where * matches any run of characters and ?
// one character; everything else is literal.
func wildcard(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

type exceptionSet struct {
	list    []Exception
	match   []*regexp.Regexp
	expired []bool
	used    []int
}

func newExceptionSet(list []Exception, now time.Time) *exceptionSet {
	s := &exceptionSet{list: list, match: make([]*regexp.Regexp, len(list)), expired: make([]bool, len(list)), used: make([]int, len(list))}
	for i, e := range list {
		s.expired[i] = e.ExpiredAt(now)
		s.match[i] = wildcard(e.Object)
	}
	return s
}

// suppress reports whether a live exception covers rule on object.
func (s *exceptionSet) suppress(rule, object string) bool {
	for i, e := range s.list {
		if !s.expired[i] && e.Rule == rule && s.match[i].MatchString(object) {
			s.used[i]++
			return true
		}
	}
	return false
}

func (s *exceptionSet) notices() []ExceptionNotice {
	var out []ExceptionNotice
	for i, e := range s.list {
		if s.expired[i] || s.used[i] > 0 {
			out = append(out, ExceptionNotice{Exception: e, Expired: s.expired[i], Suppressed: s.used[i]})
		}
	}
	return out
}
