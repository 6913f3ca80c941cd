package application

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/manifest"
)

// staleMapper is discovery as read before a kind was installed: it knows
// the kind only after Reset.
type staleMapper struct {
	meta.RESTMapper
	fresh meta.RESTMapper
}

func (m *staleMapper) Reset() { m.RESTMapper = m.fresh }

// A cluster-scoped kind installed after discovery was read is still
// cluster-scoped: its object gets no namespace, so the inventory names it
// as it lives (a namespaced entry for it was later taken for an object
// gone from Git, and the live object pruned).
func TestPrepareReadsDiscoveryAgainForAKindItDoesNotKnow(t *testing.T) {
	clusterKind := schema.GroupVersionKind{Group: "infra.example.test", Version: "v1", Kind: "Bucket"}
	fresh := meta.NewDefaultRESTMapper(nil)
	fresh.Add(clusterKind, meta.RESTScopeRoot)
	fresh.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	stale := &staleMapper{RESTMapper: meta.NewDefaultRESTMapper(nil), fresh: fresh}
	objs, err := manifest.Parse("x.yaml", []byte(`apiVersion: infra.example.test/v1
kind: Bucket
metadata: {name: logs}
---
apiVersion: infra.example.test/v1
kind: Bucket
metadata: {name: named, namespace: oops}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
`))
	if err != nil {
		t.Fatal(err)
	}
	app := &berthv1.Application{}
	app.Name, app.Namespace, app.Spec.Namespace = "demo", "team", "prod"
	if err := Prepare(objs, app, NamespacedFunc(stale, objs)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Object.GetKind()+" "+o.Object.GetNamespace()+"/"+o.Object.GetName())
	}
	want := []string{"Bucket /logs", "Bucket /named", "ConfigMap prod/c"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("prepared objects (-want +got):\n%s", d)
	}
}

// An inventory written before that fix holds the cluster-scoped object
// under a namespace: it is the same object, not one gone from Git.
func TestSubtractMatchesClusterScopedObjectsAcrossNamespaces(t *testing.T) {
	old := []berthv1.ObjectRef{
		{Group: "infra.example.test", Version: "v1", Kind: "Bucket", Namespace: "prod", Name: "logs"},
		{Group: "infra.example.test", Version: "v1", Kind: "Bucket", Namespace: "prod", Name: "removed"},
		{Version: "v1", Kind: "ConfigMap", Namespace: "prod", Name: "c"},
		{Version: "v1", Kind: "ConfigMap", Namespace: "other", Name: "c"},
	}
	next := []berthv1.ObjectRef{
		{Group: "infra.example.test", Version: "v1", Kind: "Bucket", Name: "logs"},
		{Version: "v1", Kind: "ConfigMap", Namespace: "prod", Name: "c"},
	}
	want := []berthv1.ObjectRef{old[1], old[3]}
	if d := cmp.Diff(want, subtract(old, next)); d != "" {
		t.Errorf("gone (-want +got):\n%s", d)
	}

	// The other way round: a revision prepared while discovery failed
	// took a ClusterRole for namespaced. It is still the same object (the
	// API server dropped the namespace), not one to prune.
	old = []berthv1.ObjectRef{{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole", Name: "reader"}}
	next = []berthv1.ObjectRef{{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole", Namespace: "prod", Name: "reader"}}
	if gone := subtract(old, next); len(gone) != 0 {
		t.Errorf("a cluster-scoped object recorded under a namespace is gone: %v", gone)
	}
}

// Two objects that name one object once namespaces are filled in are
// refused, not applied one over the other.
func TestPrepareRefusesObjectsThatBecomeTheSame(t *testing.T) {
	objs, err := manifest.Parse("x.yaml", []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: prod}
`))
	if err != nil {
		t.Fatal(err)
	}
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	app := &berthv1.Application{}
	app.Name, app.Namespace, app.Spec.Namespace = "demo", "team", "prod"
	err = Prepare(objs, app, NamespacedFunc(mapper, objs))
	if err == nil || !strings.Contains(err.Error(), "ConfigMap prod/cfg is defined twice") || !strings.Contains(err.Error(), "x.yaml:5") {
		t.Errorf("err = %v, want the second ConfigMap refused as defined twice", err)
	}
}
