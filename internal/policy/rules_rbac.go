package policy

import (
	"fmt"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/berth-dev/berth/internal/manifest"
)

// RBAC rule IDs.
const (
	RuleRBACWildcard            = "rbac-wildcard"
	RuleRBACClusterAdminBinding = "rbac-cluster-admin-binding"
	RuleRBACEscalation          = "rbac-escalation-verbs"
	RuleRBACSACClusterWrite     = "rbac-serviceaccount-cluster-write"
)

func init() {
	register(
		&Rule{
			ID: RuleRBACWildcard, Family: "rbac", Severity: SeverityHigh, DefaultMode: ModeEnforce,
			Summary: "a Role or ClusterRole grants \"*\" verbs, resources or apiGroups",
			Fix:     "list the exact verbs, resources and apiGroups the workload needs; wildcards also grant whatever is added to the cluster later",
			check:   rbacWildcards,
		},
		&Rule{
			ID: RuleRBACClusterAdminBinding, Family: "rbac", Severity: SeverityCritical, DefaultMode: ModeEnforce,
			Summary: "a RoleBinding or ClusterRoleBinding grants cluster-admin",
			Fix:     "bind a role with only the permissions the subject needs (or the built-in admin/edit/view roles in one namespace)",
			check:   rbacClusterAdmin,
		},
		&Rule{
			ID: RuleRBACEscalation, Family: "rbac", Severity: SeverityHigh, DefaultMode: ModeEnforce,
			Summary: "a role grants escalate, bind or impersonate, which let a subject gain permissions it does not have",
			Fix:     "remove escalate/bind/impersonate; if a controller truly needs bind, restrict it with resourceNames to the roles it may bind",
			check:   rbacEscalation,
		},
		&Rule{
			ID: RuleRBACSACClusterWrite, Family: "rbac", Severity: SeverityHigh, DefaultMode: ModeWarn,
			Summary:  "a ClusterRoleBinding gives a ServiceAccount write access in every namespace",
			Fix:      "use a RoleBinding in each namespace the ServiceAccount must write to, or narrow the ClusterRole to read verbs",
			checkAll: rbacSACClusterWrite,
		},
	)
}

// writeVerbs are the verbs that change objects.
var writeVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "deletecollection": true, "*": true}

// builtinWriteRoles are the default ClusterRoles that grant write access.
var builtinWriteRoles = map[string]bool{"cluster-admin": true, "admin": true, "edit": true}

func isRBAC(obj *manifest.Object, kinds ...string) bool {
	u := obj.Object
	if u == nil || u.GroupVersionKind().Group != rbacv1.GroupName {
		return false
	}
	for _, k := range kinds {
		if u.GetKind() == k {
			return true
		}
	}
	return false
}

// policyRules decodes a Role's or ClusterRole's rules.
func policyRules(obj *manifest.Object) []rbacv1.PolicyRule {
	var r rbacv1.ClusterRole // Role has the same rules field
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object.Object, &r); err != nil {
		return nil
	}
	return r.Rules
}

func rbacWildcards(_ *evalContext, obj *manifest.Object, _ *podTemplate) []finding {
	if !isRBAC(obj, "Role", "ClusterRole") {
		return nil
	}
	var out []finding
	for i, r := range policyRules(obj) {
		var fields []string
		for _, f := range []struct {
			name string
			vals []string
		}{{"verbs", r.Verbs}, {"resources", r.Resources}, {"apiGroups", r.APIGroups}, {"nonResourceURLs", r.NonResourceURLs}} {
			for _, v := range f.vals {
				if v == "*" || (f.name == "resources" && strings.HasSuffix(v, "/*")) {
					fields = append(fields, f.name)
					break
				}
			}
		}
		if len(fields) > 0 {
			out = append(out, finding{obj: obj, field: fmt.Sprintf("rules[%d]", i), message: fmt.Sprintf("rules[%d] uses \"*\" in %s", i, strings.Join(fields, ", "))})
		}
	}
	return out
}

func roleBinding(obj *manifest.Object) (*rbacv1.ClusterRoleBinding, bool) {
	if !isRBAC(obj, "RoleBinding", "ClusterRoleBinding") {
		return nil, false
	}
	var b rbacv1.ClusterRoleBinding // RoleBinding has the same fields
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object.Object, &b); err != nil {
		return nil, false
	}
	return &b, true
}

func subjectNames(ss []rbacv1.Subject) string {
	var out []string
	for _, s := range ss {
		n := s.Kind + " " + s.Name
		if s.Namespace != "" {
			n = s.Kind + " " + s.Namespace + "/" + s.Name
		}
		out = append(out, n)
	}
	return strings.Join(out, ", ")
}

func rbacClusterAdmin(_ *evalContext, obj *manifest.Object, _ *podTemplate) []finding {
	b, ok := roleBinding(obj)
	if !ok || b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != "cluster-admin" {
		return nil
	}
	scope := "in every namespace and on the cluster"
	if obj.Object.GetKind() == "RoleBinding" {
		scope = "with full control of namespace " + obj.Object.GetNamespace()
	}
	return []finding{{obj: obj, field: "roleRef", message: fmt.Sprintf("binds cluster-admin to %s %s", subjectNames(b.Subjects), scope)}}
}

func rbacEscalation(_ *evalContext, obj *manifest.Object, _ *podTemplate) []finding {
	if !isRBAC(obj, "Role", "ClusterRole") {
		return nil
	}
	var out []finding
	for i, r := range policyRules(obj) {
		var bad []string
		for _, v := range r.Verbs {
			switch v {
			case "escalate", "bind", "impersonate":
				bad = append(bad, v)
			}
		}
		if len(bad) > 0 {
			out = append(out, finding{obj: obj, field: fmt.Sprintf("rules[%d]", i), message: fmt.Sprintf("rules[%d] grants %s on %s", i, strings.Join(bad, ", "), strings.Join(r.Resources, ", "))})
		}
	}
	return out
}

// rolesWrite reports whether rules grant any write verb on resources.
func rulesWrite(rules []rbacv1.PolicyRule) []string {
	set := map[string]bool{}
	for _, r := range rules {
		if len(r.Resources) == 0 {
			continue
		}
		for _, v := range r.Verbs {
			if writeVerbs[v] {
				set[v] = true
			}
		}
	}
	var out []string
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func rbacSACClusterWrite(_ *evalContext, objs []manifest.Object) []finding {
	roles := map[string][]rbacv1.PolicyRule{}
	for i := range objs {
		if isRBAC(&objs[i], "ClusterRole") {
			roles[objs[i].Object.GetName()] = policyRules(&objs[i])
		}
	}
	var out []finding
	for i := range objs {
		obj := &objs[i]
		if !isRBAC(obj, "ClusterRoleBinding") {
			continue
		}
		b, ok := roleBinding(obj)
		if !ok || b.RoleRef.Kind != "ClusterRole" {
			continue
		}
		var sas []rbacv1.Subject
		for _, s := range b.Subjects {
			if s.Kind == rbacv1.ServiceAccountKind {
				sas = append(sas, s)
			}
		}
		if len(sas) == 0 {
			continue
		}
		var verbs []string
		if rules, ok := roles[b.RoleRef.Name]; ok {
			verbs = rulesWrite(rules)
		} else if builtinWriteRoles[b.RoleRef.Name] {
			verbs = []string{"create", "delete", "patch", "update"}
		}
		if len(verbs) == 0 {
			continue
		}
		out = append(out, finding{obj: obj, field: "subjects", message: fmt.Sprintf("gives %s cluster-wide %s through ClusterRole %s", subjectNames(sas), strings.Join(verbs, "/"), b.RoleRef.Name)})
	}
	return out
}
