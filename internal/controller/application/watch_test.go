package application

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// Informers are shared by the Applications that need them and let go
// when the last one no longer does: a kind dropped from an inventory, a
// service account changed, an Application deleted.
func TestWatcherLetsGoOfInformersNobodyNeeds(t *testing.T) {
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, meta.RESTScopeRoot)
	w := newWatcher(mapper, func(app *berthv1.Application) (metadata.Interface, string, error) {
		return nil, "system:serviceaccount:" + app.Namespace + ":" + app.Spec.ServiceAccountName, nil
	}, func(string, string) {})
	app := func(name, sa string) *berthv1.Application {
		a := &berthv1.Application{}
		a.Namespace, a.Name, a.Spec.ServiceAccountName = "team", name, sa
		return a
	}
	cm := berthv1.ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: "team", Name: "c"}
	ns := berthv1.ObjectRef{Version: "v1", Kind: "Namespace", Name: "team-extra"}
	ctx := context.Background()
	keys := func() map[string]int {
		out := map[string]int{}
		for k, inf := range w.informers {
			out[k.String()] = inf.users.Len()
		}
		return out
	}
	cmKey := "/v1, Resource=configmaps in namespace team as system:serviceaccount:team:deployer"
	nsKey := "/v1, Resource=namespaces cluster-wide as system:serviceaccount:team:deployer"

	w.ensure(ctx, app("a", "deployer"), []berthv1.ObjectRef{cm, ns})
	w.ensure(ctx, app("b", "deployer"), []berthv1.ObjectRef{cm})
	if got := keys(); len(got) != 2 || got[cmKey] != 2 || got[nsKey] != 1 {
		t.Fatalf("informers = %v, want configmaps shared by two apps, namespaces by one", got)
	}
	w.ensure(ctx, app("a", "deployer"), []berthv1.ObjectRef{cm}) // dropped its Namespace
	if got := keys(); len(got) != 1 || got[cmKey] != 2 {
		t.Fatalf("after a dropped kind: informers = %v", got)
	}
	w.ensure(ctx, app("a", "other"), []berthv1.ObjectRef{cm}) // changed account
	if got := keys(); len(got) != 2 || got[cmKey] != 1 {
		t.Fatalf("after a changed account: informers = %v", got)
	}
	w.release(types.NamespacedName{Namespace: "team", Name: "b"})
	w.release(types.NamespacedName{Namespace: "team", Name: "a"})
	if got := keys(); len(got) != 0 || len(w.byApp) != 0 {
		t.Fatalf("after both apps were deleted: informers = %v, byApp = %v", got, w.byApp)
	}
}

// A refused watch is not asked for again before deniedRetry; after it,
// the refusal is forgotten even when nobody asks for that watch again.
func TestWatcherForgetsOldRefusals(t *testing.T) {
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	w := newWatcher(mapper, func(*berthv1.Application) (metadata.Interface, string, error) {
		return nil, "system:serviceaccount:team:deployer", nil
	}, func(string, string) {})
	a := &berthv1.Application{}
	a.Namespace, a.Name = "team", "a"
	cm := berthv1.ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: "team", Name: "c"}
	user := "system:serviceaccount:team:deployer"
	recent := watchKey{gvr: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, namespace: "team", user: user}
	stale := watchKey{gvr: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, namespace: "gone", user: user}
	w.denied[recent] = time.Now()
	w.denied[stale] = time.Now().Add(-deniedRetry - time.Second)

	w.ensure(context.Background(), a, []berthv1.ObjectRef{cm})
	if len(w.informers) != 0 {
		t.Errorf("a watch refused a moment ago was asked for again: %v", w.informers)
	}
	if _, ok := w.denied[stale]; ok {
		t.Errorf("a refusal older than %s is still held", deniedRetry)
	}
	w.denied[recent] = time.Now().Add(-deniedRetry - time.Second)
	w.ensure(context.Background(), a, []berthv1.ObjectRef{cm})
	if _, ok := w.informers[recent]; !ok || len(w.denied) != 0 {
		t.Errorf("after %s: informers %v, denied %v; want the watch asked for again", deniedRetry, w.informers, w.denied)
	}
}
