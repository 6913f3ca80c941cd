package application

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// watcher keeps one metadata-only informer per kind that Applications own,
// selected by berth's ownership label, and enqueues the owning Application
// on every change or deletion: that is how drift is seen within seconds.
type watcher struct {
	client  metadata.Interface
	mapper  meta.RESTMapper
	enqueue func(namespace, name string)
	// status, when set, is called on status-only updates.
	status func(namespace, name string)

	mu      sync.Mutex
	ctx     context.Context
	started map[schema.GroupVersionResource]bool
	pending []schema.GroupVersionResource
}

func newWatcher(c metadata.Interface, mapper meta.RESTMapper, enqueue func(namespace, name string)) *watcher {
	return &watcher{client: c, mapper: mapper, enqueue: enqueue, started: map[schema.GroupVersionResource]bool{}}
}

// run starts the informers requested so far and those requested later,
// until ctx ends. It is a manager Runnable, so only the leader watches.
func (w *watcher) run(ctx context.Context) error {
	w.mu.Lock()
	w.ctx = ctx
	pending := w.pending
	w.pending = nil
	w.mu.Unlock()
	for _, gvr := range pending {
		w.startInformer(ctx, gvr)
	}
	<-ctx.Done()
	return nil
}

// ensure makes sure every kind in inv is watched.
func (w *watcher) ensure(_ context.Context, inv []berthv1.ObjectRef) {
	for _, r := range inv {
		mapping, err := w.mapper.RESTMapping(schema.GroupKind{Group: r.Group, Kind: r.Kind}, r.Version)
		if err != nil {
			continue
		}
		gvr := mapping.Resource
		w.mu.Lock()
		if w.started[gvr] {
			w.mu.Unlock()
			continue
		}
		w.started[gvr] = true
		ctx := w.ctx
		if ctx == nil {
			w.pending = append(w.pending, gvr)
		}
		w.mu.Unlock()
		if ctx != nil {
			w.startInformer(ctx, gvr)
		}
	}
}

func (w *watcher) startInformer(ctx context.Context, gvr schema.GroupVersionResource) {
	inf := metadatainformer.NewFilteredMetadataInformer(w.client, gvr, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = berthv1.OwnerNameLabel }).Informer()
	owner := func(obj any) (string, string) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		m, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			return "", ""
		}
		l := m.GetLabels()
		return l[berthv1.OwnerNamespaceLabel], l[berthv1.OwnerNameLabel]
	}
	notify := func(obj any) {
		if ns, name := owner(obj); name != "" && ns != "" {
			w.enqueue(ns, name)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(o, n any) {
			if specChanged(o, n) {
				notify(n)
			} else if ns, name := owner(n); w.status != nil && name != "" && ns != "" {
				w.status(ns, name)
			}
		},
		DeleteFunc: notify,
	})
	ctrl.LoggerFrom(ctx).Info("watching owned objects", "resource", gvr.String())
	go inf.Run(ctx.Done())
}

// specChanged reports whether an update can be drift: a new generation
// (spec change), changed labels, or any change of a kind
// that has no generation (ConfigMaps, Services ...). Status-only updates,
// the bulk of all events during a rollout, are ignored.
func specChanged(o, n any) bool {
	om, ok1 := o.(*metav1.PartialObjectMetadata)
	nm, ok2 := n.(*metav1.PartialObjectMetadata)
	if !ok1 || !ok2 {
		return true
	}
	if nm.Generation == 0 {
		return om.ResourceVersion != nm.ResourceVersion
	}
	// Annotations are left out: controllers write their own (a Deployment's
	// revision) on every rollout. An annotation edit is corrected by the
	// periodic full pass instead.
	return om.Generation != nm.Generation || !equalMaps(om.Labels, nm.Labels)
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}
