package application

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/policy"
	src "github.com/berth-dev/berth/internal/source"
)

// SetupWithManager registers the reconciler, its drift watches and its
// trigger channel with mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.metrics = defaultMetrics
	r.digests = &policy.DigestCache{TTL: time.Minute, NegativeTTL: 15 * time.Second}
	r.triggers = make(chan trigger, 4096)
	r.watcher = newWatcher(r.Mapper, r.metadataClient, r.driftSeen)
	r.watcher.forbidden = func(key types.NamespacedName, w watchKey, err error) {
		app := &berthv1.Application{}
		if r.Get(context.Background(), key, app) != nil {
			return
		}
		r.Recorder.Eventf(app, corev1.EventTypeWarning, "DriftWatchForbidden",
			"cannot watch %s: %v; drift there is found by the full pass every %s instead of at once (grant list and watch to see it at once)", w, err, r.interval(app))
	}
	r.watcher.status = func(ns, name string, obj objectID) {
		key := types.NamespacedName{Namespace: ns, Name: name}
		r.statusChanged(key, obj)
		// A Job's status (it finished) is read at once, even for a
		// settled Application: one the cluster removes once finished
		// (ttlSecondsAfterFinished) counts as done only if seen complete.
		if _, known := r.lastFetch.Load(key); known && obj.gr == (schema.GroupResource{Group: "batch", Resource: "jobs"}) {
			r.healthDue.Store(key, struct{}{})
		}
		if r.awaitingHealth(ns, name) {
			r.enqueue(ns, name, priorityNormal)
		}
	}
	if err := mgr.Add(manager.RunnableFunc(r.watcher.run)); err != nil {
		return err
	}
	// Cleanups that wait for a chart's delete hooks run outside the
	// workers, for as long as this process leads (see cleanUpOffWorker).
	r.offWorker = true
	if err := mgr.Add(manager.RunnableFunc(r.leadCleanups)); err != nil {
		return err
	}
	if r.MaxConcurrent <= 0 {
		r.MaxConcurrent = 8
	}
	// Several agents may run in one process (tests); names need not be unique.
	skip := true
	return ctrl.NewControllerManagedBy(mgr).
		For(&berthv1.Application{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WatchesRawSource(triggerSource{ch: r.triggers}).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrent, SkipNameValidation: &skip}).
		Named("application").
		Complete(r)
}

// driftSeen marks the Application namespace/name as possibly drifted (an
// object it owns changed or was deleted) and asks for a reconcile ahead of
// polls.
func (r *Reconciler) driftSeen(namespace, name string) {
	r.suspectDrift.Store(types.NamespacedName{Namespace: namespace, Name: name}, struct{}{})
	r.enqueue(namespace, name, priorityDrift)
}

// metadataClient returns the metadata-only client acting as app's user,
// and that user, for the drift watches.
func (r *Reconciler) metadataClient(app *berthv1.Application) (metadata.Interface, string, error) {
	a, err := r.accountOf(app)
	if err != nil {
		return nil, "", err
	}
	return a.metadata, r.impersonatedUser(app), nil
}

// TriggerURL fetches Git now for every Application whose source URL matches
// url (compared without scheme credentials, trailing slash or ".git"). It
// returns the matched Applications.
func (r *Reconciler) TriggerURL(ctx context.Context, urls ...string) ([]types.NamespacedName, error) {
	var list berthv1.ApplicationList
	if err := r.List(ctx, &list, client.InNamespace("")); err != nil {
		return nil, fmt.Errorf("listing Applications: %w", err)
	}
	want := map[string]bool{}
	for _, u := range urls {
		want[NormalizeURL(u)] = true
	}
	var out []types.NamespacedName
	var matched []berthv1.Application
	for _, a := range list.Items {
		if r.Namespace != "" && a.Namespace != r.Namespace {
			continue
		}
		if want[NormalizeURL(a.Spec.Source.URL)] {
			r.Fetcher.Invalidate(a.Spec.Source.URL)
			r.webhookTriggered.Store(types.NamespacedName{Namespace: a.Namespace, Name: a.Name}, struct{}{})
			matched = append(matched, a)
			out = append(out, types.NamespacedName{Namespace: a.Namespace, Name: a.Name})
		}
	}
	// Reconcile the Applications whose directory changed first: in a
	// monorepo a push usually touches one app of hundreds, and the queue is
	// first in, first out. The others follow at once (a Kustomize base
	// outside an app's path may have changed).
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		// Changed Applications are enqueued as soon as they are found.
		rest := r.partitionChanged(ctx, matched, func(a berthv1.Application) {
			r.enqueue(a.Namespace, a.Name, priorityPush)
		})
		for _, a := range rest {
			r.enqueue(a.Namespace, a.Name, priorityLow)
		}
	}()
	return out, nil
}

// partitionChanged calls changed for each of apps whose source directory
// differs between the newest commit and the applied one, and returns the
// rest. When that cannot be told (no snapshot of the applied commit here),
// an app counts as changed.
func (r *Reconciler) partitionChanged(ctx context.Context, apps []berthv1.Application, changed func(berthv1.Application)) (rest []berthv1.Application) {
	for _, a := range apps {
		auth, err := r.credentials(ctx, &a)
		if err != nil {
			changed(a)
			continue
		}
		ref := src.Ref{Branch: a.Spec.Source.Branch, Tag: a.Spec.Source.Tag, Commit: a.Spec.Source.Commit}
		snap, err := r.Fetcher.Fetch(ctx, a.Spec.Source.URL, ref, auth)
		if err != nil || a.Status.LastAppliedRevision == "" {
			changed(a)
			continue
		}
		old, ok := r.Fetcher.Cached(a.Spec.Source.URL, a.Status.LastAppliedRevision)
		if !ok || src.DirHash(snap.Dir, a.Spec.Source.Path) != src.DirHash(old.Dir, a.Spec.Source.Path) {
			changed(a)
			continue
		}
		rest = append(rest, a)
	}
	return rest
}

// NormalizeURL reduces a repository URL to host/path for matching.
func NormalizeURL(u string) string {
	u = strings.ToLower(strings.TrimSpace(u))
	scheme := ""
	if i := strings.Index(u, "://"); i >= 0 {
		scheme, u = u[:i], u[i+3:]
	}
	if i := strings.LastIndex(u, "@"); i >= 0 && (!strings.Contains(u, "/") || i < strings.Index(u, "/")) {
		u = u[i+1:]
	}
	if scheme != "" {
		// A scheme's own port is no part of the repository's name.
		host, rest, _ := strings.Cut(u, "/")
		if h, port, ok := strings.Cut(host, ":"); ok && port == defaultPorts[scheme] {
			host = h
		}
		// GitHub's SSH over 443 is github.com under another name.
		if host == "ssh.github.com:443" {
			host = "github.com"
		}
		u = host + "/" + rest
	}
	u = strings.Replace(u, ":", "/", 1) // git@host:org/repo, or a port
	u = strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git")
	return u
}

// defaultPorts are the ports a URL of each scheme names by default.
var defaultPorts = map[string]string{"https": "443", "http": "80", "ssh": "22", "git": "9418"}
