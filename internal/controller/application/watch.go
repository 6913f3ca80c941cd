package application

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// watcher keeps metadata-only informers on the kinds that Applications
// own, selected by berth's ownership label, and enqueues the owning
// Application on every change or deletion: that is how drift is seen
// within seconds. Each informer watches as an Application's service
// account, in one namespace (or cluster-wide for a cluster-scoped kind),
// never as the agent: the agent's own role reads no workload, and no
// Secret, of any namespace.
type watcher struct {
	mapper meta.RESTMapper
	// clientFor returns the metadata client acting as app's service
	// account, and that account's user name.
	clientFor func(app *berthv1.Application) (metadata.Interface, string, error)
	enqueue   func(namespace, name string)
	// status, when set, is called on status-only updates with the owning
	// Application and the object.
	status func(namespace, name string, obj objectID)
	// forbidden, when set, is told, for each Application that needs it,
	// when an account may not watch a kind: drift in it is then found by
	// the periodic full pass only.
	forbidden func(app types.NamespacedName, w watchKey, err error)

	mu  sync.Mutex
	ctx context.Context
	// informers are those running (or asked for before run), by key.
	informers map[watchKey]*informer
	// byApp holds the keys each Application's inventory needs.
	byApp map[types.NamespacedName]sets.Set[watchKey]
	// denied holds when an account was refused a watch: it is asked
	// again after deniedRetry, not on every sync.
	denied map[watchKey]time.Time
}

// informer is one running (or pending) informer and the Applications
// that need it; it stops when the last of them no longer does.
type informer struct {
	client metadata.Interface
	users  sets.Set[types.NamespacedName]
	stop   context.CancelFunc // nil until started
}

// deniedRetry is how long a refused watch is not asked for again.
const deniedRetry = 10 * time.Minute

// objectID names one live object by its resource.
type objectID struct {
	gr              schema.GroupResource
	namespace, name string
}

// watchKey is one informer: a kind, a namespace ("" for a cluster-scoped
// kind) and the account it watches as.
type watchKey struct {
	gvr       schema.GroupVersionResource
	namespace string
	user      string
}

func (k watchKey) String() string {
	where := "cluster-wide"
	if k.namespace != "" {
		where = "in namespace " + k.namespace
	}
	return fmt.Sprintf("%s %s as %s", k.gvr.String(), where, k.user)
}

func newWatcher(mapper meta.RESTMapper, clientFor func(*berthv1.Application) (metadata.Interface, string, error), enqueue func(namespace, name string)) *watcher {
	return &watcher{mapper: mapper, clientFor: clientFor, enqueue: enqueue,
		informers: map[watchKey]*informer{}, byApp: map[types.NamespacedName]sets.Set[watchKey]{}, denied: map[watchKey]time.Time{}}
}

// run starts the informers requested so far and those requested later,
// until ctx ends. It is a manager Runnable, so only the leader watches.
func (w *watcher) run(ctx context.Context) error {
	w.mu.Lock()
	w.ctx = ctx
	var pending []watchKey
	for key, inf := range w.informers {
		if inf.stop == nil {
			pending = append(pending, key)
		}
	}
	w.mu.Unlock()
	for _, key := range pending {
		w.startInformer(ctx, key)
	}
	<-ctx.Done()
	return nil
}

// ensure makes sure every kind in app's inventory inv is watched, in the
// namespaces inv names, as app's service account, and lets go of the
// informers app needed before and no longer does (an object kind it
// dropped, a namespace or service account it left).
func (w *watcher) ensure(ctx context.Context, app *berthv1.Application, inv []berthv1.ObjectRef) {
	id := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	mc, user, err := w.clientFor(app)
	if err != nil {
		ctrl.LoggerFrom(ctx).Info("no client to watch owned objects with", "error", err.Error())
		return
	}
	want := sets.New[watchKey]()
	complete := true
	for _, r := range inv {
		mapping, err := w.mapper.RESTMapping(schema.GroupKind{Group: r.Group, Kind: r.Kind}, r.Version)
		if err != nil {
			complete = false // a kind not mapped now (stale discovery): keep what runs
			continue
		}
		key := watchKey{gvr: mapping.Resource, user: user}
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			key.namespace = r.Namespace
		}
		want.Insert(key)
	}
	w.mu.Lock()
	// Refusals past deniedRetry are forgotten, whoever they were for: a
	// kind or account nobody asks for again leaves no entry behind.
	for key, at := range w.denied {
		if time.Since(at) >= deniedRetry {
			delete(w.denied, key)
		}
	}
	for key := range want {
		if _, ok := w.denied[key]; ok {
			want.Delete(key)
		}
	}
	var start []watchKey
	for key := range want {
		inf, ok := w.informers[key]
		if !ok {
			inf = &informer{client: mc, users: sets.New[types.NamespacedName]()}
			w.informers[key] = inf
			if w.ctx != nil {
				start = append(start, key)
			}
		}
		inf.users.Insert(id)
	}
	keep := want
	if !complete {
		// Only what runs as the same account: one the Application left
		// is let go even so.
		for key := range w.byApp[id] {
			if key.user == user {
				keep.Insert(key)
			}
		}
	}
	stop := w.releaseLocked(id, keep)
	runCtx := w.ctx
	w.mu.Unlock()
	for _, s := range stop {
		s()
	}
	for _, key := range start {
		w.startInformer(runCtx, key)
	}
}

// release lets go of every informer app needed (it was deleted).
func (w *watcher) release(app types.NamespacedName) {
	w.mu.Lock()
	stop := w.releaseLocked(app, nil)
	w.mu.Unlock()
	for _, s := range stop {
		s()
	}
}

// releaseLocked records that app now needs the informers in keep only,
// and returns the stop functions of those nobody needs any more.
func (w *watcher) releaseLocked(app types.NamespacedName, keep sets.Set[watchKey]) []context.CancelFunc {
	var stop []context.CancelFunc
	for key := range w.byApp[app] {
		if keep.Has(key) {
			continue
		}
		inf, ok := w.informers[key]
		if !ok {
			continue
		}
		inf.users.Delete(app)
		if inf.users.Len() == 0 {
			delete(w.informers, key)
			if inf.stop != nil {
				stop = append(stop, inf.stop)
			}
		}
	}
	if keep.Len() == 0 {
		delete(w.byApp, app)
	} else {
		w.byApp[app] = keep
	}
	return stop
}

func (w *watcher) startInformer(ctx context.Context, key watchKey) {
	w.mu.Lock()
	ent, ok := w.informers[key]
	if !ok || ent.stop != nil {
		w.mu.Unlock()
		return // released before it started, or started already
	}
	ctx, stop := context.WithCancel(ctx)
	ent.stop = stop
	w.mu.Unlock()
	inf := metadatainformer.NewFilteredMetadataInformer(ent.client, key.gvr, key.namespace, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = berthv1.OwnerNameLabel }).Informer()
	// An account that may not list or watch the kind: stop (the reflector
	// would retry forever) and tell the Applications that need it; their
	// syncs ask again after deniedRetry. Other errors are logged and
	// retried, as by default.
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		if !apierrors.IsForbidden(err) {
			cache.DefaultWatchErrorHandler(ctx, r, err)
			return
		}
		w.mu.Lock()
		if w.informers[key] != ent {
			w.mu.Unlock()
			return // already stopped
		}
		delete(w.informers, key)
		w.denied[key] = time.Now()
		users := ent.users.UnsortedList()
		for _, u := range users {
			if keys, ok := w.byApp[u]; ok {
				keys.Delete(key)
			}
		}
		w.mu.Unlock()
		stop()
		if w.forbidden != nil {
			for _, u := range users {
				w.forbidden(u, key, err)
			}
		}
	})
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
				if m, ok := n.(*metav1.PartialObjectMetadata); ok {
					w.status(ns, name, objectID{gr: key.gvr.GroupResource(), namespace: m.Namespace, name: m.Name})
				}
			}
		},
		DeleteFunc: notify,
	})
	ctrl.LoggerFrom(ctx).Info("watching owned objects", "resource", key.gvr.String(), "namespace", key.namespace, "as", key.user)
	go inf.RunWithContext(ctx)
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
