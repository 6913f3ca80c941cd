package application

import (
	"strings"
	"testing"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// Outside the trusted namespaces an Application acts only as a service
// account of its own namespace: named bare, deploying there; the agent's
// default account counts as named when the Application names none.
func TestCrossNamespace(t *testing.T) {
	r := &Reconciler{TrustedNamespaces: []string{"berth-system"}}
	app := func(ns, dest, sa string) *berthv1.Application {
		a := &berthv1.Application{}
		a.Namespace, a.Spec.Namespace, a.Spec.ServiceAccountName = ns, dest, sa
		return a
	}
	for _, c := range []struct {
		name      string
		app       *berthv1.Application
		defaultSA string
		want      string // "" allowed, else a part of the refusal
	}{
		{"own namespace", app("team", "team", "deployer"), "", ""},
		{"own namespace, bare default", app("team", "team", ""), "deployer", ""},
		{"another namespace", app("team", "kube-system", "deployer"), "", "deploys only into team"},
		{"a full user name", app("team", "team", "system:serviceaccount:kube-system:namespace-controller"), "", "is a user name"},
		{"a full user name by default", app("team", "team", ""), "system:serviceaccount:berth-system:deployer", "--default-service-account is a user name"},
		{"trusted, anywhere", app("berth-system", "kube-system", "system:serviceaccount:kube-system:x"), "", ""},
		{"trusted, full default", app("berth-system", "shop", ""), "system:serviceaccount:berth-system:deployer", ""},
	} {
		r.DefaultServiceAccount = c.defaultSA
		got := r.crossNamespace(c.app)
		if c.want == "" && got != "" || c.want != "" && (!strings.Contains(got, c.want) || !strings.Contains(got, "berth-system")) {
			t.Errorf("%s: crossNamespace = %q, want %q", c.name, got, c.want)
		}
	}
}
