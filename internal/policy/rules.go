package policy

import (
	"sort"

	"github.com/berth-dev/berth/internal/manifest"
)

// Rule is one gate. Its ID never changes once released: configurations,
// exceptions and SARIF results refer to it.
type Rule struct {
	// ID is the stable rule ID, e.g. "image-latest-tag".
	ID string
	// Family groups rules: images, pod-security, resources, secrets, rbac.
	Family string
	// Severity is the default severity.
	Severity Severity
	// DefaultMode is the mode when no configuration names the rule.
	DefaultMode Mode
	// Summary is one line saying what the rule checks.
	Summary string
	// Fix says how to fix a violation.
	Fix string

	// check runs per object; pod is the object's pod template, nil for
	// objects that carry none.
	check func(ec *evalContext, obj *manifest.Object, pod *podTemplate) []finding
	// checkAll runs once over the whole revision.
	checkAll func(ec *evalContext, objs []manifest.Object) []finding
}

// registry holds every rule by ID; each rule family registers its rules in
// its own file.
var registry = map[string]*Rule{}

func register(rs ...*Rule) {
	for _, r := range rs {
		registry[r.ID] = r
	}
}

// Rules returns every rule, sorted by family and ID.
func Rules() []Rule {
	out := make([]Rule, 0, len(registry))
	for _, r := range registry {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Family != out[j].Family {
			return out[i].Family < out[j].Family
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// LookupRule returns the rule with id.
func LookupRule(id string) (Rule, bool) {
	r, ok := registry[id]
	if !ok {
		return Rule{}, false
	}
	return *r, true
}

// enabledRules returns the rules whose mode in cfg is not off, in ID order.
func enabledRules(cfg *Config) []*Rule {
	var out []*Rule
	for _, r := range registry {
		if cfg.mode(r) != ModeOff {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
