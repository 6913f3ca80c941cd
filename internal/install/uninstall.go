package install

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/manifest"
)

// Uninstalled is what Uninstall did.
type Uninstalled struct {
	// Released counts the Applications whose cleanup finalizer was taken
	// off (their objects stay).
	Released int
	// Deleted lists the install's objects deleted (IDs).
	Deleted []string
	// Kept lists the install's objects left in place: its namespace, when
	// the install did not create it.
	Kept []string
}

// applications is the Application resource.
var applications = berthv1.GroupVersion.WithResource("applications")

// Uninstall removes berth from the cluster and keeps every object its
// Applications applied: it stops the agent (deletes its Deployment and
// waits, up to wait, for its pods to be gone, so that none puts a
// finalizer back or acts on a deletion), takes berth's cleanup finalizer
// off every Application, then deletes the rest of the install in reverse
// order: Service, RBAC, admission policies, the namespace, and the CRDs
// (and with them every Application and Release). Deleting the CRDs while an
// agent runs, or while Applications hold the finalizer with no agent left,
// would have the agent prune what they applied, or leave them Terminating:
// that is why `kubectl delete -f` of the install is not the way out.
func Uninstall(ctx context.Context, cfg *rest.Config, o Options, wait time.Duration) (Uninstalled, error) {
	var out Uninstalled
	data, err := Manifests(o)
	if err != nil {
		return out, err
	}
	objs, err := manifest.Parse("berth-install.yaml", data)
	if err != nil {
		return out, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return out, fmt.Errorf("creating discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return out, fmt.Errorf("creating client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	remove := func(o manifest.Object) error {
		u := o.Object
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			return nil // its kind is gone already
		}
		if err != nil {
			return fmt.Errorf("mapping %s: %w", o.ID(), err)
		}
		ri := dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		if m.Scope.Name() != meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource)
		}
		switch err := ri.Delete(ctx, u.GetName(), metav1.DeleteOptions{}); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("deleting %s: %w", o.ID(), err)
		default:
			out.Deleted = append(out.Deleted, o.ID())
		}
		return nil
	}

	// 1. The agent, and its pods (those its Deployment selects).
	var selector string
	for _, obj := range objs {
		if obj.Object.GetKind() == "Deployment" {
			if err := remove(obj); err != nil {
				return out, err
			}
			m, _, _ := unstructured.NestedStringMap(obj.Object.Object, "spec", "selector", "matchLabels")
			selector = labels.SelectorFromSet(m).String()
		}
	}
	pods := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "pods"}).Namespace(o.Namespace)
	for deadline := time.Now().Add(wait); selector != ""; {
		l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil && !apierrors.IsNotFound(err) {
			return out, fmt.Errorf("listing the agent's pods: %w", err)
		}
		if err != nil || len(l.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("the agent's %d pod(s) in %s still run after %s: nothing else was removed (run again once they are gone)", len(l.Items), o.Namespace, wait)
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}

	// 2. The finalizers, with the Applications' objects kept.
	list, err := dyn.Resource(applications).List(ctx, metav1.ListOptions{})
	if err != nil && !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
		return out, fmt.Errorf("listing Applications: %w", err)
	}
	if err == nil {
		for _, a := range list.Items {
			if !slices.Contains(a.GetFinalizers(), berthv1.CleanupFinalizer) {
				continue
			}
			kept := slices.DeleteFunc(slices.Clone(a.GetFinalizers()), func(f string) bool { return f == berthv1.CleanupFinalizer })
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": kept, "resourceVersion": a.GetResourceVersion()}})
			_, err := dyn.Resource(applications).Namespace(a.GetNamespace()).Patch(ctx, a.GetName(), types.MergePatchType, patch, metav1.PatchOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return out, fmt.Errorf("taking the finalizer off Application %s/%s: %w", a.GetNamespace(), a.GetName(), err)
			}
			out.Released++
		}
	}

	// 3. The rest, in reverse order: the CRDs last. The namespace only
	// when the install created it (one it found is someone else's).
	for i := len(objs) - 1; i >= 0; i-- {
		if objs[i].Object.GetKind() == "Deployment" {
			continue
		}
		if objs[i].Object.GetKind() == "Namespace" {
			theirs, err := foreignNamespace(ctx, dyn, objs[i].Object.GetName())
			if err != nil {
				return out, err
			}
			if theirs {
				out.Kept = append(out.Kept, objs[i].ID())
				continue
			}
		}
		if err := remove(objs[i]); err != nil {
			return out, err
		}
	}
	// The grants of --tenant-namespaces, which these options may not name.
	gone, err := removeTenantGrants(ctx, dyn, nil)
	out.Deleted = append(out.Deleted, gone...)
	return out, err
}
