package audit

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/client-go/kubernetes"

	"github.com/berth-dev/berth/internal/install"
)

// DefaultAgentServiceAccount is where `berth install` runs the agent.
const DefaultAgentServiceAccount = "berth-system/berth-agent"

// agentRBAC describes the agent's own footprint: every binding of its
// ServiceAccount, failing on cluster-admin, wildcard verbs, escalate and
// bind, and anything beyond what `berth install` grants the agent (see
// install.AgentRules). The install's own grants — impersonating service
// accounts, its release records, getting Secrets by name — pass.
func agentRBAC(ctx context.Context, cs kubernetes.Interface, sa string) (Check, error) {
	c := Check{ID: CheckAgentRBAC, Method: "RBAC bindings of the agent's ServiceAccount"}
	if sa == "" {
		sa = DefaultAgentServiceAccount
	}
	ns, name, ok := strings.Cut(sa, "/")
	if !ok {
		return c, fmt.Errorf("agent ServiceAccount %q: want namespace/name", sa)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			c.Status, c.Detail = Unknown, fmt.Sprintf("ServiceAccount %s not found: is the agent installed (--agent-service-account)?", sa)
			return c, nil
		}
		return c, fmt.Errorf("reading ServiceAccount %s: %w", sa, err)
	}
	snap, err := loadRBAC(ctx, cs)
	if err != nil {
		return c, err
	}
	installCluster, installNS, err := install.AgentRules(ns)
	if err != nil {
		return c, err
	}
	// The agent holds what is bound to its ServiceAccount, to the same
	// identity named as a User, and to the groups every token of it
	// carries (Kubernetes' own bootstrap bindings to those groups, such as
	// discovery for every authenticated user, are left out).
	me := Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
	user := serviceaccount.MakeUsername(ns, name)
	groups := map[string]bool{}
	for _, g := range append(serviceaccount.MakeGroupNames(ns), "system:authenticated") {
		groups[g] = true
	}
	var lines, problems []string
	grantsSecretCreate, grantsAppWrite := false, false
	for _, b := range snap.bindings {
		bound := false
		for _, s := range b.subjects {
			switch {
			case subjectOf(s, b.namespace) == me, s.Kind == rbacv1.UserKind && s.Name == user,
				s.Kind == rbacv1.GroupKind && groups[s.Name] && !b.defaults:
				bound = true
			}
		}
		if !bound {
			continue
		}
		rules, _ := b.rules(snap)
		scope := "cluster-wide"
		if b.kind == "RoleBinding" {
			scope = "in " + b.namespace
		}
		lines = append(lines, fmt.Sprintf("%s (%s, %d rules)", b.via(), scope, len(rules)))
		if b.roleRef.Name == "cluster-admin" {
			problems = append(problems, "bound to cluster-admin via "+b.via())
		}
		allowed := installCluster
		if b.kind == "RoleBinding" && b.namespace == ns {
			allowed = append(append([]rbacv1.PolicyRule(nil), installCluster...), installNS...)
		}
		for _, r := range rules {
			for _, v := range r.Verbs {
				switch v {
				case "*":
					problems = append(problems, "wildcard verbs via "+b.via())
				case "escalate", "bind":
					problems = append(problems, v+" via "+b.via())
				}
			}
			if matches(r.APIGroups, "") && matches(r.Resources, "secrets") && matches(r.Verbs, "create") {
				grantsSecretCreate = true
			}
			if matches(r.APIGroups, "berth.dev") && matches(r.Resources, "applications") &&
				(matches(r.Verbs, "patch") || matches(r.Verbs, "update")) {
				grantsAppWrite = true
			}
			if extra := beyond(r, allowed); extra != "" {
				problems = append(problems, extra+" via "+b.via()+", beyond what `berth install` grants")
			}
		}
	}
	// Two of the install's grants are safe only with the admission policy
	// that narrows them: each is looked for, bound and denying.
	for _, need := range []struct {
		granted            bool
		what, marker, risk string
	}{
		{grantsSecretCreate, "may create Secrets", "berth.dev/release-manifests",
			"limits that to berth.dev/release-manifests (berth install's berth-agent-secrets): it could write a token Secret for any service account"},
		{grantsAppWrite, "may patch Applications", "berth.dev/cleanup",
			"limits that to the berth.dev/cleanup finalizer (berth install's berth-agent-applications): it could change an Application's service account, source or policy"},
	} {
		if !need.granted {
			continue
		}
		ok, err := boundPolicy(ctx, cs, user, need.marker)
		switch {
		case err != nil:
			problems = append(problems, need.what+", and the admission policies that should limit that cannot be read: "+err.Error())
		case !ok:
			problems = append(problems, need.what+", and no ValidatingAdmissionPolicy "+need.risk)
		}
	}
	sort.Strings(lines)
	problems = dedupe(problems)
	switch {
	case len(lines) == 0:
		c.Status, c.Detail = Warn, fmt.Sprintf("ServiceAccount %s has no RBAC bindings: the agent cannot apply anything", sa)
	case len(problems) > 0:
		c.Status = Fail
		c.Detail = fmt.Sprintf("ServiceAccount %s holds more than it needs: %s (bindings: %s)", sa, strings.Join(problems, "; "), strings.Join(lines, "; "))
	default:
		c.Status = Pass
		c.Detail = fmt.Sprintf("ServiceAccount %s holds no more than `berth install` grants: %s", sa, strings.Join(lines, "; "))
	}
	return c, nil
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// beyond returns the first grant of r that no rule in allowed covers, as
// "verb group/resource", or "" when allowed covers all of r.
func beyond(r rbacv1.PolicyRule, allowed []rbacv1.PolicyRule) string {
	if len(r.NonResourceURLs) > 0 {
		return "non-resource URLs " + strings.Join(r.NonResourceURLs, ",")
	}
	for _, g := range r.APIGroups {
		for _, res := range r.Resources {
			for _, v := range r.Verbs {
				covered := false
				for _, a := range allowed {
					if namesCovered(a.ResourceNames, r.ResourceNames) && matches(a.APIGroups, g) && matches(a.Resources, res) && matches(a.Verbs, v) {
						covered = true
						break
					}
				}
				if !covered {
					group := g
					if group == "" {
						group = "core"
					}
					return v + " " + group + "/" + res
				}
			}
		}
	}
	return ""
}

// namesCovered reports whether a rule limited to the objects named allowed
// (none: every object) grants what a rule limited to asked does: asked
// must name only objects among allowed.
func namesCovered(allowed, asked []string) bool {
	if len(allowed) == 0 {
		return true
	}
	if len(asked) == 0 {
		return false
	}
	for _, n := range asked {
		if !matches(allowed, n) {
			return false
		}
	}
	return true
}

// matches reports whether list grants x ("*" grants anything; a "*" asked
// for is granted only by "*").
func matches(list []string, x string) bool {
	for _, l := range list {
		if l == "*" || l == x {
			return true
		}
	}
	return false
}

// boundPolicy reports whether a bound, denying ValidatingAdmissionPolicy
// for user has a validation that names marker, as berth install's
// berth-agent-secrets (berth.dev/release-manifests) and
// berth-agent-applications (berth.dev/cleanup) do.
func boundPolicy(ctx context.Context, cs kubernetes.Interface, user, marker string) (bool, error) {
	policies, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	bindings, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	for _, p := range policies.Items {
		forUser, restricts := false, false
		for _, m := range p.Spec.MatchConditions {
			forUser = forUser || strings.Contains(m.Expression, "'"+user+"'")
		}
		for _, v := range p.Spec.Validations {
			restricts = restricts || strings.Contains(v.Expression, marker)
		}
		if !forUser || !restricts {
			continue
		}
		for _, b := range bindings.Items {
			if b.Spec.PolicyName == p.Name && slices.Contains(b.Spec.ValidationActions, admissionregistrationv1.Deny) {
				return true, nil
			}
		}
	}
	return false, nil
}
