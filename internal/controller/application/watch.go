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
	// status, when set, is called on status-only updates.
	status func(namespace, name string)
	// forbidden, when set, is told once when an account may not watch a
	// kind: drift in it is then found by the periodic full pass only.
	forbidden func(app types.NamespacedName, w watchKey, err error)

	mu      sync.Mutex
	ctx     context.Context
	started map[watchKey]bool
	// denied holds when an account was refused a watch: it is asked
	// again after deniedRetry, not on every sync.
	denied  map[watchKey]time.Time
	pending []pendingWatch
}

// deniedRetry is how long a refused watch is not asked for again.
const deniedRetry = 10 * time.Minute

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

// pendingWatch is an informer asked for before run started.
type pendingWatch struct {
	key    watchKey
	client metadata.Interface
	app    types.NamespacedName
}

func newWatcher(mapper meta.RESTMapper, clientFor func(*berthv1.Application) (metadata.Interface, string, error), enqueue func(namespace, name string)) *watcher {
	return &watcher{mapper: mapper, clientFor: clientFor, enqueue: enqueue, started: map[watchKey]bool{}, denied: map[watchKey]time.Time{}}
}

// run starts the informers requested so far and those requested later,
// until ctx ends. It is a manager Runnable, so only the leader watches.
func (w *watcher) run(ctx context.Context) error {
	w.mu.Lock()
	w.ctx = ctx
	pending := w.pending
	w.pending = nil
	w.mu.Unlock()
	for _, p := range pending {
		w.startInformer(ctx, p)
	}
	<-ctx.Done()
	return nil
}

// ensure makes sure every kind in app's inventory inv is watched, in the
// namespaces inv names, as app's service account.
func (w *watcher) ensure(ctx context.Context, app *berthv1.Application, inv []berthv1.ObjectRef) {
	var mc metadata.Interface
	var user string
	for _, r := range inv {
		mapping, err := w.mapper.RESTMapping(schema.GroupKind{Group: r.Group, Kind: r.Kind}, r.Version)
		if err != nil {
			continue
		}
		if mc == nil {
			if mc, user, err = w.clientFor(app); err != nil {
				ctrl.LoggerFrom(ctx).Info("no client to watch owned objects with", "error", err.Error())
				return
			}
		}
		key := watchKey{gvr: mapping.Resource, user: user}
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			key.namespace = r.Namespace
		}
		w.mu.Lock()
		if at, ok := w.denied[key]; w.started[key] || ok && time.Since(at) < deniedRetry {
			w.mu.Unlock()
			continue
		}
		w.started[key] = true
		p := pendingWatch{key: key, client: mc, app: types.NamespacedName{Namespace: app.Namespace, Name: app.Name}}
		runCtx := w.ctx
		if runCtx == nil {
			w.pending = append(w.pending, p)
		}
		w.mu.Unlock()
		if runCtx != nil {
			w.startInformer(runCtx, p)
		}
	}
}

func (w *watcher) startInformer(ctx context.Context, p pendingWatch) {
	ctx, stop := context.WithCancel(ctx)
	inf := metadatainformer.NewFilteredMetadataInformer(p.client, p.key.gvr, p.key.namespace, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = berthv1.OwnerNameLabel }).Informer()
	// An account that may not list or watch the kind: stop (the reflector
	// would retry forever) and say so once; the next sync of an
	// Application that owns the kind asks again.
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		if !apierrors.IsForbidden(err) {
			return
		}
		w.mu.Lock()
		first := w.started[p.key]
		delete(w.started, p.key)
		w.denied[p.key] = time.Now()
		w.mu.Unlock()
		stop()
		if first && w.forbidden != nil {
			w.forbidden(p.app, p.key, err)
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
				w.status(ns, name)
			}
		},
		DeleteFunc: notify,
	})
	ctrl.LoggerFrom(ctx).Info("watching owned objects", "resource", p.key.gvr.String(), "namespace", p.key.namespace, "as", p.key.user)
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
