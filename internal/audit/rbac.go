package audit

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultCIPatterns match the names of CI/CD accounts (path.Match syntax,
// case-insensitive, tried against the subject's name and, for
// ServiceAccounts, against "namespace/name").
var DefaultCIPatterns = []string{
	"ci", "ci-*", "*-ci", "*-ci-*", "ci/*", "cicd*", "*-cicd", "*deployer*", "github-actions*", "gha-*",
	"gitlab*", "jenkins*", "tekton*", "circleci*", "buildkite*", "drone*", "*pipeline*", "spinnaker*", "argocd*", "flux*",
}

// RBACOptions configures RBAC.
type RBACOptions struct {
	// CIPatterns name CI/CD accounts; nil means DefaultCIPatterns.
	CIPatterns []string
	// CIAllowedResources are the resources ("deployments.apps", "configmaps")
	// a CI/CD account may write in namespaces it is bound to; anything more
	// is flagged. With pull-based delivery CI needs no write access to the
	// cluster at all, so the default is none.
	CIAllowedResources []string
	// IncludeSystem lists system subjects too ("system:" users and groups,
	// ServiceAccounts of kube-system, kube-public and kube-node-lease).
	IncludeSystem bool
}

// Subject is a user, group or ServiceAccount.
type Subject struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// String renders "ServiceAccount ns/name", "User name", "Group name".
func (s Subject) String() string {
	if s.Namespace != "" {
		return s.Kind + " " + s.Namespace + "/" + s.Name
	}
	return s.Kind + " " + s.Name
}

// Grant is write access a subject holds through one binding.
type Grant struct {
	// Namespace is where the access applies; "*" for every namespace
	// (a ClusterRoleBinding).
	Namespace string `json:"namespace"`
	// Resources are "resource.group" names ("*" for all).
	Resources []string `json:"resources"`
	// Verbs are the write verbs granted.
	Verbs []string `json:"verbs"`
	// Via names the binding and role: "ClusterRoleBinding x → ClusterRole y".
	Via string `json:"via"`
}

// Writer is a subject with its write grants in one namespace.
type Writer struct {
	Subject Subject `json:"subject"`
	// CI reports whether the subject matched a CI/CD pattern.
	CI     bool    `json:"ci,omitempty"`
	Grants []Grant `json:"grants"`
}

// NamespaceWriters lists who can write in a namespace.
type NamespaceWriters struct {
	Namespace string   `json:"namespace"`
	Writers   []Writer `json:"writers"`
}

// CIFinding is a CI/CD account holding more than it needs.
type CIFinding struct {
	Subject Subject `json:"subject"`
	// Problems says what is too much, one line each.
	Problems []string `json:"problems"`
}

// RBACReport is the outcome of RBAC.
type RBACReport struct {
	// ClusterWide lists subjects that can write in every namespace.
	ClusterWide []Writer `json:"clusterWide"`
	// Namespaces lists, per namespace, the subjects bound there with write
	// access (cluster-wide writers come on top, see ClusterWide).
	Namespaces []NamespaceWriters `json:"namespaces"`
	// CI lists the over-privileged CI/CD accounts.
	CI []CIFinding `json:"ci"`
	// HiddenSystem counts system subjects left out (see IncludeSystem).
	HiddenSystem int `json:"hiddenSystem,omitempty"`
}

// rbacSnapshot is every RBAC object of the cluster.
type rbacSnapshot struct {
	namespaces   []string
	roles        map[string][]rbacv1.PolicyRule // "ns/name"
	clusterRoles map[string][]rbacv1.PolicyRule
	bindings     []binding
}

type binding struct {
	kind, namespace, name string
	roleRef               rbacv1.RoleRef
	subjects              []rbacv1.Subject
	// defaults: one of Kubernetes' own bootstrap bindings (label
	// kubernetes.io/bootstrapping: rbac-defaults), such as
	// system:basic-user for every authenticated user.
	defaults bool
}

// bootstrapLabel marks the RBAC objects the API server creates itself.
const bootstrapLabel = "kubernetes.io/bootstrapping"

func (b binding) rules(s *rbacSnapshot) ([]rbacv1.PolicyRule, bool) {
	if b.roleRef.Kind == "Role" {
		r, ok := s.roles[b.namespace+"/"+b.roleRef.Name]
		return r, ok
	}
	r, ok := s.clusterRoles[b.roleRef.Name]
	return r, ok
}

func (b binding) via() string {
	n := b.kind + " " + b.name
	if b.namespace != "" {
		n = b.kind + " " + b.namespace + "/" + b.name
	}
	return n + " → " + b.roleRef.Kind + " " + b.roleRef.Name
}

func loadRBAC(ctx context.Context, cs kubernetes.Interface) (*rbacSnapshot, error) {
	s := &rbacSnapshot{roles: map[string][]rbacv1.PolicyRule{}, clusterRoles: map[string][]rbacv1.PolicyRule{}}
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	for _, ns := range nss.Items {
		s.namespaces = append(s.namespaces, ns.Name)
	}
	rs, err := cs.RbacV1().Roles("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	for _, r := range rs.Items {
		s.roles[r.Namespace+"/"+r.Name] = r.Rules
	}
	crs, err := cs.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing cluster roles: %w", err)
	}
	for _, r := range crs.Items {
		s.clusterRoles[r.Name] = r.Rules
	}
	rbs, err := cs.RbacV1().RoleBindings("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing role bindings: %w", err)
	}
	for _, b := range rbs.Items {
		s.bindings = append(s.bindings, binding{kind: "RoleBinding", namespace: b.Namespace, name: b.Name, roleRef: b.RoleRef, subjects: b.Subjects,
			defaults: b.Labels[bootstrapLabel] == "rbac-defaults"})
	}
	crbs, err := cs.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing cluster role bindings: %w", err)
	}
	for _, b := range crbs.Items {
		s.bindings = append(s.bindings, binding{kind: "ClusterRoleBinding", name: b.Name, roleRef: b.RoleRef, subjects: b.Subjects,
			defaults: b.Labels[bootstrapLabel] == "rbac-defaults"})
	}
	return s, nil
}

var writeVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "deletecollection": true, "*": true}

// writeGrant extracts the write part of rules; ok is false when there is none.
func writeGrant(rules []rbacv1.PolicyRule) (resources, verbs []string, ok bool) {
	rs, vs := map[string]bool{}, map[string]bool{}
	for _, r := range rules {
		var wv []string
		for _, v := range r.Verbs {
			if writeVerbs[v] {
				wv = append(wv, v)
			}
		}
		if len(wv) == 0 || len(r.Resources) == 0 {
			continue
		}
		groups := r.APIGroups
		if len(groups) == 0 {
			groups = []string{""}
		}
		for _, g := range groups {
			for _, res := range r.Resources {
				rs[qualify(res, g)] = true
			}
		}
		for _, v := range wv {
			vs[v] = true
		}
	}
	return sortedKeys(rs), sortedKeys(vs), len(rs) > 0
}

func qualify(resource, group string) string {
	switch {
	case resource == "*" && group == "*":
		return "*"
	case group == "":
		return resource
	}
	return resource + "." + group
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func subjectOf(s rbacv1.Subject, bindingNS string) Subject {
	out := Subject{Kind: s.Kind, Name: s.Name}
	if s.Kind == rbacv1.ServiceAccountKind {
		out.Namespace = s.Namespace
		if out.Namespace == "" {
			out.Namespace = bindingNS
		}
	}
	return out
}

// isSystem reports whether s is part of Kubernetes itself.
func isSystem(s Subject) bool {
	if strings.HasPrefix(s.Name, "system:") {
		return true
	}
	switch s.Namespace {
	case "kube-system", "kube-public", "kube-node-lease":
		return s.Kind == rbacv1.ServiceAccountKind
	}
	return false
}

func matchesAny(patterns []string, s Subject) bool {
	names := []string{strings.ToLower(s.Name)}
	if s.Namespace != "" {
		names = append(names, strings.ToLower(s.Namespace+"/"+s.Name))
	}
	for _, p := range patterns {
		for _, n := range names {
			if ok, _ := path.Match(strings.ToLower(p), n); ok {
				return true
			}
		}
	}
	return false
}

// RBAC lists every subject that can write in each namespace of the
// cluster behind cs and flags CI/CD accounts with more than they need.
func RBAC(ctx context.Context, cs kubernetes.Interface, opts RBACOptions) (*RBACReport, error) {
	if opts.CIPatterns == nil {
		opts.CIPatterns = DefaultCIPatterns
	}
	snap, err := loadRBAC(ctx, cs)
	if err != nil {
		return nil, err
	}
	grants := map[Subject][]Grant{}
	hidden := map[Subject]bool{}
	risks := map[Subject][]string{}
	for _, b := range snap.bindings {
		rules, ok := b.rules(snap)
		if !ok {
			continue
		}
		for _, s := range b.subjects {
			sub := subjectOf(s, b.namespace)
			if matchesAny(opts.CIPatterns, sub) && (opts.IncludeSystem || !isSystem(sub)) {
				risks[sub] = append(risks[sub], ruleRisks(rules, b)...)
			}
		}
		res, verbs, ok := writeGrant(rules)
		if !ok {
			continue
		}
		ns := b.namespace
		if b.kind == "ClusterRoleBinding" {
			ns = "*"
		}
		for _, s := range b.subjects {
			sub := subjectOf(s, b.namespace)
			if !opts.IncludeSystem && isSystem(sub) {
				hidden[sub] = true
				continue
			}
			grants[sub] = append(grants[sub], Grant{Namespace: ns, Resources: res, Verbs: verbs, Via: b.via()})
		}
	}
	rep := &RBACReport{HiddenSystem: len(hidden), ClusterWide: []Writer{}, Namespaces: []NamespaceWriters{}, CI: []CIFinding{}}
	perNS := map[string][]Writer{}
	subjects := make([]Subject, 0, len(grants))
	for s := range grants {
		subjects = append(subjects, s)
	}
	for s := range risks {
		if _, ok := grants[s]; !ok {
			subjects = append(subjects, s)
		}
	}
	sort.Slice(subjects, func(i, j int) bool { return subjects[i].String() < subjects[j].String() })
	for _, s := range subjects {
		ci := matchesAny(opts.CIPatterns, s)
		byNS := map[string][]Grant{}
		for _, g := range grants[s] {
			byNS[g.Namespace] = append(byNS[g.Namespace], g)
		}
		for ns, gs := range byNS {
			w := Writer{Subject: s, CI: ci, Grants: gs}
			if ns == "*" {
				rep.ClusterWide = append(rep.ClusterWide, w)
			} else {
				perNS[ns] = append(perNS[ns], w)
			}
		}
		if ci {
			probs := dedupe(append(ciProblems(grants[s], opts.CIAllowedResources), risks[s]...))
			if len(probs) > 0 {
				rep.CI = append(rep.CI, CIFinding{Subject: s, Problems: probs})
			}
		}
	}
	for _, ns := range snap.namespaces {
		if ws := perNS[ns]; len(ws) > 0 {
			rep.Namespaces = append(rep.Namespaces, NamespaceWriters{Namespace: ns, Writers: ws})
		}
	}
	return rep, nil
}

// sensitive resources whose write (or, for secrets, read) access is more
// than a delivery pipeline needs.
var sensitive = map[string]string{
	"secrets":                                       "can write Secrets",
	"roles.rbac.authorization.k8s.io":               "can change RBAC (roles)",
	"rolebindings.rbac.authorization.k8s.io":        "can change RBAC (role bindings)",
	"clusterroles.rbac.authorization.k8s.io":        "can change RBAC (cluster roles)",
	"clusterrolebindings.rbac.authorization.k8s.io": "can change RBAC (cluster role bindings)",
	"pods/exec":             "can exec into pods",
	"serviceaccounts/token": "can mint ServiceAccount tokens",
}

// ruleRisks finds grants that are risky even without write verbs:
// escalate, bind, impersonate, and reading Secrets.
func ruleRisks(rules []rbacv1.PolicyRule, b binding) []string {
	var out []string
	where := "namespace " + b.namespace
	if b.kind == "ClusterRoleBinding" {
		where = "every namespace"
	}
	for _, r := range rules {
		var esc, read []string
		for _, v := range r.Verbs {
			switch v {
			case "escalate", "bind", "impersonate":
				esc = append(esc, v)
			case "get", "list", "watch":
				read = append(read, v)
			}
		}
		if len(esc) > 0 {
			out = append(out, fmt.Sprintf("can %s %s in %s via %s", strings.Join(esc, "/"), strings.Join(r.Resources, ", "), where, b.via()))
		}
		if len(read) > 0 && coreGroup(r.APIGroups) {
			for _, res := range r.Resources {
				if res == "secrets" || res == "*" {
					out = append(out, fmt.Sprintf("can %s Secrets in %s via %s", strings.Join(read, "/"), where, b.via()))
					break
				}
			}
		}
	}
	return out
}

func ciProblems(gs []Grant, allowed []string) []string {
	allow := map[string]bool{}
	for _, a := range allowed {
		allow[a] = true
	}
	var out []string
	add := func(p string) {
		for _, o := range out {
			if o == p {
				return
			}
		}
		out = append(out, p)
	}
	for _, g := range gs {
		where := "namespace " + g.Namespace
		if g.Namespace == "*" {
			where = "every namespace"
			add(fmt.Sprintf("has cluster-wide write access via %s", g.Via))
		}
		if strings.HasSuffix(g.Via, "ClusterRole cluster-admin") {
			add(fmt.Sprintf("is bound to cluster-admin via %s", g.Via))
		}
		var extra []string
		for _, r := range g.Resources {
			if r == "*" || strings.HasPrefix(r, "*.") {
				add(fmt.Sprintf("has wildcard resources (%s) in %s via %s", r, where, g.Via))
				continue
			}
			if msg, ok := sensitive[r]; ok {
				add(fmt.Sprintf("%s in %s via %s", msg, where, g.Via))
				continue
			}
			if !allow[r] {
				extra = append(extra, r)
			}
		}
		for _, v := range g.Verbs {
			if v == "*" {
				add(fmt.Sprintf("has wildcard verbs in %s via %s", where, g.Via))
			}
		}
		if len(extra) > 0 && g.Namespace != "*" {
			add(fmt.Sprintf("can %s %s in %s via %s (pull-based delivery needs no CI write access; allow with --ci-allow)", strings.Join(g.Verbs, "/"), strings.Join(extra, ", "), where, g.Via))
		}
	}
	return out
}

// coreGroup reports whether groups include the core API group.
func coreGroup(groups []string) bool {
	if len(groups) == 0 {
		return true
	}
	for _, g := range groups {
		if g == "" || g == "*" {
			return true
		}
	}
	return false
}
