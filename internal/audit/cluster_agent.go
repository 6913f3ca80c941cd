package audit

import (
	"context"
	"fmt"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultAgentServiceAccount is where berth's agent runs.
const DefaultAgentServiceAccount = "berth-system/berth"

// agentRBAC describes the agent's own footprint: every binding of its
// ServiceAccount, failing on cluster-admin, wildcards and escalation verbs.
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
	me := Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
	var lines, problems []string
	for _, b := range snap.bindings {
		bound := false
		for _, s := range b.subjects {
			if subjectOf(s, b.namespace) == me {
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
		for _, r := range rules {
			for _, v := range r.Verbs {
				switch v {
				case "*":
					problems = append(problems, "wildcard verbs via "+b.via())
				case "escalate", "bind", "impersonate":
					problems = append(problems, v+" via "+b.via())
				}
			}
			for _, res := range r.Resources {
				if res == "*" {
					problems = append(problems, "wildcard resources via "+b.via())
				}
			}
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
		c.Detail = fmt.Sprintf("ServiceAccount %s: %s", sa, strings.Join(lines, "; "))
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
