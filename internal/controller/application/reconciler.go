package application

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/policy"
	"github.com/berth-dev/berth/internal/render"
	"github.com/berth-dev/berth/internal/source"
)

// Renderer renders a chart or overlay as render.Render does.
type Renderer interface {
	Render(ctx context.Context, dir string, opts render.Options) (*render.Result, error)
}

// Reconciler reconciles Applications.
type Reconciler struct {
	client.Client
	// Config is the agent's own client configuration; writes to
	// Applications' objects use a copy impersonating their service account.
	Config *rest.Config
	// APIReader reads Applications uncached when the cache is behind this
	// agent's own status write (see read).
	APIReader client.Reader
	// Mapper maps kinds to resources; shared and reset on unknown kinds.
	Mapper ResettableMapper
	// Fetcher pulls Git snapshots, shared by every Application.
	Fetcher *source.Fetcher
	// Recorder emits Kubernetes events on Applications.
	Recorder record.EventRecorder
	// DefaultServiceAccount is impersonated when an Application names none.
	DefaultServiceAccount string
	// TrustedNamespaces hold the Applications that may deploy into other
	// namespaces (see crossNamespace); none when empty.
	TrustedNamespaces []string
	// DefaultInterval is the poll interval when an Application sets none.
	DefaultInterval time.Duration
	// MaxConcurrent reconciles; default 8.
	MaxConcurrent int
	// Namespace, when set, limits the reconciler to Applications there.
	Namespace string
	// SkipImageResolution turns tag-to-digest resolution off (for clusters
	// that cannot reach their registries); image rules still run.
	SkipImageResolution bool
	// Renderer renders Helm charts and Kustomize overlays; nil renders in
	// this process (render.Render), without limits. The agent's runs them
	// in worker processes it can stop (renderworker.Pool).
	Renderer Renderer

	digests *policy.DigestCache

	metrics  *Metrics
	watcher  *watcher
	triggers chan trigger
	mu       sync.Mutex
	accounts map[string]*account // by impersonated user

	// suspectDrift holds Applications whose owned objects changed since
	// their last full sync (set by the watches).
	suspectDrift sync.Map
	// lastFull is when each Application last went through a full
	// validate-and-apply pass; a pass is forced once per poll interval.
	lastFull sync.Map
	// lastHealthy is when each Application was last seen Healthy.
	lastHealthy sync.Map
	// caps is the cluster as Helm's templates see it.
	caps capabilities
	// transientTries counts each Application's transient failures in a
	// row (see retrySoon).
	transientTries sync.Map
	// webhookTriggered marks Applications a webhook enqueued, so their next
	// release records the trigger.
	webhookTriggered sync.Map
	// healthDue holds Applications waiting for their objects to turn
	// healthy: their next reconcile may be a health check only (see
	// healthOnly), triggered by a status change of an owned object or the
	// fallback poll.
	healthDue sync.Map
	// waiting holds, for Applications whose health is Progressing, the
	// objects that were not yet Current at the last check (see health).
	waiting sync.Map
	// touched holds, per Application, the owned objects whose status
	// changed since its health was last read whole (*touchedObjects).
	touched sync.Map
	// ttlJobs holds, per Application, the Jobs its current release lets
	// the cluster remove once finished (see ttljobs.go).
	ttlJobs sync.Map
	// lastFetch is when each Application last fetched Git.
	lastFetch sync.Map
	// written holds the resourceVersion of the status this process wrote
	// last for each Application (see read).
	written sync.Map
	// unrecorded holds, per Application, the sync that was applied but
	// whose release record failed (see reconcile; keepUnrecorded also
	// writes it to status when it has a snapshot).
	unrecorded sync.Map
	// pendingRollback holds, per Application, the automatic rollback that
	// failed in this process (see retryRollback).
	pendingRollback sync.Map
	// resumed holds Applications whose interrupted rollbacks this process
	// has checked for (see resume).
	resumed sync.Map
	// validated holds, per Application, the move (commit, digest, current
	// release, service account) whose revision passed the dry run before
	// its pre-sync hook, while that hook runs.
	validated sync.Map
	// hookRan holds Applications for which this process started or found
	// a pre-sync Job since their last release record (see
	// pruneAbandonedHooks).
	hookRan sync.Map
	// helmRenders holds, per Helm Application, its last render (see
	// cachedHelmRender).
	helmRenders sync.Map
	// finalizerRefused holds Applications whose cleanup finalizer could not
	// be set (see ensureFinalizer).
	finalizerRefused sync.Map
	// renderStops holds, per Application, the render a worker was stopped
	// for at a limit (see renderStopped).
	renderStops sync.Map
	// cleanups holds, per deleted Helm Application, its cleanup run off
	// the workers (see cleanUpOffWorker).
	cleanups sync.Map
	// cleanupMu guards leading against runs starting as it ends.
	cleanupMu sync.Mutex
	// leading is the context of this process's leadership (see
	// leadCleanups; nil before, and without a manager).
	leading context.Context
	// cleanupRuns counts the cleanups running off the workers.
	cleanupRuns sync.WaitGroup
	// offWorker is set with a manager: charts' cleanups then run only off
	// the workers, while this process leads.
	offWorker bool
}

// healthRecheck is how long a Healthy result is trusted by reconciles that
// changed nothing (e.g. a push to another app of the same repository).
const healthRecheck = 10 * time.Second

// ResettableMapper is a REST mapper whose discovery cache can be reset when
// a kind is not found (a CRD applied a moment ago).
type ResettableMapper = meta.ResettableRESTMapper

// Interval returns how often app polls Git.
func (r *Reconciler) interval(app *berthv1.Application) time.Duration {
	if app.Spec.Source.Interval != nil && app.Spec.Source.Interval.Duration > 0 {
		return app.Spec.Source.Interval.Duration
	}
	if r.DefaultInterval > 0 {
		return r.DefaultInterval
	}
	return time.Minute
}

// Reconcile runs one pass of the pipeline for one Application.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	start := time.Now()
	app, err := r.read(ctx, req.NamespacedName)
	if err != nil || app == nil {
		return ctrl.Result{}, err
	}
	defer func() {
		// Not for an Application let go (its finalizer removed): its
		// series are gone with it (forget).
		if app.DeletionTimestamp.IsZero() || controllerutil.ContainsFinalizer(app, berthv1.CleanupFinalizer) {
			r.metrics.ReconcileDuration.WithLabelValues(req.Namespace, req.Name).Observe(time.Since(start).Seconds())
		}
	}()
	if r.earlierCleanupRuns(app) {
		// What the deleted Application of this name applied may still be
		// being deleted: this one waits, rather than race it.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if !app.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, app)
	}
	if app.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	if err := r.ensureFinalizer(ctx, app); err != nil {
		return ctrl.Result{}, err
	}
	before := app.DeepCopy()
	defer func() {
		// A push's priority is for the reconcile it triggered, not for
		// the requeues that follow.
		if res.RequeueAfter > 0 && res.Priority == nil {
			p := priorityNormal
			res.Priority = &p
		}
		app.Status.ObservedGeneration = app.Generation
		keepTransitions(before, app)
		if err := r.writeStatus(ctx, before, app); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	return r.reconcile(ctx, app)
}

// read returns the Application to reconcile (nil when it is gone). It
// reads the cache, unless the cache has not caught up with the status this
// agent wrote last: then the API server. The status written by the
// previous reconcile (release, pin) must be seen, or a stale copy could
// re-apply a commit that was just rolled back; reading the API server
// every time would cost a request per reconcile.
func (r *Reconciler) read(ctx context.Context, key types.NamespacedName) (*berthv1.Application, error) {
	app := &berthv1.Application{}
	if err := r.Get(ctx, key, app); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(key)
		}
		return nil, client.IgnoreNotFound(err)
	}
	if w, ok := r.written.Load(key); !ok || w.(string) == app.ResourceVersion || r.APIReader == nil {
		return app, nil
	}
	// Behind our own write, or someone else wrote since: either way the
	// API server has the truth.
	r.metrics.UncachedReads.Inc()
	fresh := &berthv1.Application{}
	if err := r.APIReader.Get(ctx, key, fresh); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	r.written.Store(key, fresh.ResourceVersion)
	return fresh, nil
}

// forget drops what this process keeps about an Application that is gone:
// one created again under its name starts afresh (an old entry could skip
// its backup or its validation).
func (r *Reconciler) forget(key types.NamespacedName) {
	for _, m := range []*sync.Map{&r.suspectDrift, &r.lastFull, &r.lastHealthy, &r.webhookTriggered, &r.healthDue,
		&r.waiting, &r.touched, &r.ttlJobs, &r.lastFetch, &r.written, &r.unrecorded, &r.pendingRollback, &r.resumed, &r.validated, &r.hookRan, &r.helmRenders, &r.renderStops, &r.finalizerRefused, &r.transientTries} {
		m.Delete(key)
	}
	r.stopCleanup(key)
	if r.metrics != nil {
		r.metrics.forget(key.Namespace, key.Name)
	}
	if r.watcher != nil {
		r.watcher.release(key)
	}
}

// unrecordedSync is a sync applied without its release record: its
// commit, manifest digest and pre-sync snapshot.
type unrecordedSync struct {
	sha, digest string
	snapshot    *berthv1.DataSnapshot
	// from is the release that ran when it was applied: once another runs
	// (a rollback came between), the snapshot is stale.
	from int64
}

// keepUnrecorded remembers u for app. One with a snapshot is also written
// to the Application's status (unrecordedSync, with the pass's status
// write): a rollback asked of an agent restarted before the record lands
// is refused too, and the retried record reuses the snapshot.
//
// A snapshot already held for the same running release is kept: the
// revision it was taken for is live and unrecorded too, and only that
// snapshot has the data from before either (a later hook, if any, saw data
// already migrated).
func (r *Reconciler) keepUnrecorded(app *berthv1.Application, u unrecordedSync) {
	if prev, ok := r.unrecordedOf(app); ok && prev.snapshot != nil && prev.from == u.from {
		u.snapshot = prev.snapshot
	}
	r.unrecorded.Store(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, u)
	app.Status.UnrecordedSync = nil
	if u.snapshot != nil {
		app.Status.UnrecordedSync = &berthv1.UnrecordedSync{Commit: u.sha, Digest: u.digest, Snapshot: *u.snapshot, FromRelease: u.from}
	}
}

// dropUnrecorded forgets app's unrecorded sync, and its copy in status.
func (r *Reconciler) dropUnrecorded(app *berthv1.Application) {
	r.unrecorded.Delete(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})
	app.Status.UnrecordedSync = nil
}

// unrecordedOf returns app's unrecorded sync: this process's, or, when it
// has none, the one the status records (an agent that stopped before the
// record landed).
func (r *Reconciler) unrecordedOf(app *berthv1.Application) (unrecordedSync, bool) {
	if v, ok := r.unrecorded.Load(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}); ok {
		return v.(unrecordedSync), true
	}
	if u := app.Status.UnrecordedSync; u != nil {
		snap := u.Snapshot
		return unrecordedSync{sha: u.Commit, digest: u.Digest, snapshot: &snap, from: u.FromRelease}, true
	}
	return unrecordedSync{}, false
}

// maxNameLength is the longest Application name berth accepts: the name
// is the value of the ownership label on everything it applies, and two
// names cut to the same 63 characters would own each other's objects.
const maxNameLength = 63

// unknownVersion is what written holds after a status write that failed:
// it may or may not have landed, so no cached copy is trusted.
const unknownVersion = "?"

// writeStatus patches app's status from before (no request when nothing
// changed) and remembers the resourceVersion it wrote, for read.
func (r *Reconciler) writeStatus(ctx context.Context, before, app *berthv1.Application) error {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	data, err := client.MergeFrom(before).Data(app)
	if err == nil && string(data) == "{}" {
		return nil // nothing changed: no request
	}
	// The patch is computed once: sent as it is.
	patch := client.RawPatch(types.MergePatchType, data)
	if err != nil {
		patch = client.MergeFrom(before)
	}
	if err := r.Status().Patch(ctx, app, patch); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Delete(key)
			return nil
		}
		r.written.Store(key, unknownVersion)
		return fmt.Errorf("patching status: %w", err)
	}
	r.written.Store(key, app.ResourceVersion)
	return nil
}

func (r *Reconciler) reconcile(ctx context.Context, app *berthv1.Application) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	poll := ctrl.Result{RequeueAfter: r.interval(app)}
	setCondition(app, berthv1.ConditionReconciling, metav1.ConditionTrue, "Progressing", "fetching "+source.Redact(app.Spec.Source.URL))

	if len(app.Name) > maxNameLength {
		answered(app)
		r.stall(app, "NameTooLong", fmt.Sprintf("the Application's name has %d characters, more than %d: berth labels every object it applies with the name (%s), and a label value holds at most %d", len(app.Name), maxNameLength, berthv1.OwnerNameLabel, maxNameLength))
		return ctrl.Result{}, nil // a new Application is needed
	}
	if r.impersonatedUser(app) == "" {
		answered(app)
		r.stall(app, "NoServiceAccount", "no service account to impersonate: set spec.serviceAccountName or start the agent with --default-service-account")
		return ctrl.Result{}, nil // a spec change will bring it back
	}
	if why := r.crossNamespace(app); why != "" {
		answered(app)
		r.stall(app, "CrossNamespaceRefused", why)
		return ctrl.Result{}, nil // a spec change will bring it back
	}

	// 0. A rollback an earlier agent process left half done.
	mgr, err := r.manager(app)
	if err != nil {
		return ctrl.Result{}, err
	}
	if res, err := r.resume(ctx, app, mgr); err != nil || res != nil {
		return deref(res), err
	}

	if r.healthOnly(app) {
		return r.health(ctx, app, mgr, nil)
	}

	// 1. Source.
	auth, err := r.credentials(ctx, app)
	if err != nil {
		answered(app)
		r.stall(app, "CredentialsUnavailable", err.Error())
		return poll, nil
	}
	ref := source.Ref{Branch: app.Spec.Source.Branch, Tag: app.Spec.Source.Tag, Commit: app.Spec.Source.Commit}
	ph := newPhases()
	defer ph.logIfSlow(log, time.Second)
	snap, err := r.Fetcher.Fetch(ctx, app.Spec.Source.URL, ref, auth)
	ph.mark("fetch")
	if errors.Is(err, source.ErrInvalidCommit) {
		answered(app)
		r.stall(app, "InvalidCommit", fmt.Sprintf("spec.source.commit: %v", err))
		return ctrl.Result{}, nil // a spec change will bring it back
	}
	if err != nil {
		reason := "FetchFailed"
		if errors.Is(err, source.ErrUnsafe) {
			reason = "UnsafeContent"
		}
		r.metrics.Failures.WithLabelValues(app.Namespace, app.Name, reason).Inc()
		msg := fmt.Sprintf("cannot fetch %s: %v; the last applied revision %s keeps running", ref, err, short(app.Status.LastAppliedRevision))
		setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, reason, msg)
		setCondition(app, berthv1.ConditionReconciling, metav1.ConditionFalse, reason, msg)
		r.Recorder.Event(app, corev1.EventTypeWarning, reason, msg)
		log.Info("fetch failed", "url", source.Redact(app.Spec.Source.URL), "error", err.Error())
		// Transient: retry with backoff, but never slower than the poll.
		return ctrl.Result{RequeueAfter: min(r.interval(app), 10*time.Second)}, nil
	}
	app.Status.LastFetchedRevision = snap.Revision
	r.lastFetch.Store(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, time.Now())
	// A push's mark is this pass's: an Application the push did not
	// change keeps none for a later release to be credited with.
	_, pushed := r.webhookTriggered.LoadAndDelete(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})

	// 2. Render.
	rev, err := r.render(ctx, app, snap)
	ph.mark("render")
	if errors.Is(err, errCapabilities) || errors.Is(err, errClusterRead) {
		msg := fmt.Sprintf("rendering %s: %v; retrying, the last applied revision %s keeps running", short(snap.Revision), err, short(app.Status.LastAppliedRevision))
		setCondition(app, berthv1.ConditionReconciling, metav1.ConditionTrue, "RenderRetrying", msg)
		return ctrl.Result{}, err // transient: retried with backoff
	}
	if err != nil {
		handled := app.Status.LastHandledSyncRequest
		r.reject(app, snap.Revision, "RenderFailed", err)
		// A new Application on a branch, whose path is not there yet
		// (pushed a moment later, or read from a listing a moment old),
		// looks again soon; a wrong path costs one listing per 10 s
		// until it is fixed or the Application has applied once. A
		// `berth sync` waiting meanwhile is answered by that retry.
		if errors.Is(err, errPathMissing) && app.Status.LastAppliedRevision == "" && app.Spec.Source.Commit == "" && app.Spec.Source.Tag == "" {
			app.Status.LastHandledSyncRequest = handled
			return ctrl.Result{RequeueAfter: min(r.interval(app), 10*time.Second)}, nil
		}
		return poll, nil
	}
	app.Status.Renderer = string(rev.kind)
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	_, drift := r.suspectDrift.LoadAndDelete(key)
	last, _ := r.lastFull.Load(key)
	fullDue := last == nil || time.Since(last.(time.Time)) >= r.interval(app)

	// Rollback and unpin requests, then pins: while Git still points at the
	// commit an Application was rolled back from, the pinned release runs.
	if res, err := r.handleRequests(ctx, app, mgr, snap.Revision); err != nil || res != nil {
		return deref(res), err
	}
	// A `berth rollback` that failed after its data restore is retried
	// before anything else, pinned or not: neither the pinned release nor
	// Git's commit may be re-applied over the restored data.
	if res, retried := r.retryManualRollback(ctx, app, mgr, snap.Revision); retried {
		return res, nil
	}
	if pin := app.Status.Pin; pin != nil {
		if snap.Revision == pin.FromCommit {
			return r.holdPin(ctx, app, mgr, drift, fullDue)
		}
		r.Recorder.Eventf(app, corev1.EventTypeNormal, "Unpinned", "new commit %s: following Git again (was pinned to release %d)", short(snap.Revision), pin.Release)
		app.Status.Pin = nil
	}

	// A failed automatic rollback is retried, not replaced by the commit
	// it was rolling away from.
	if res, retried := r.retryRollback(ctx, app, mgr, snap.Revision); retried {
		return res, nil
	}

	// 3. Policy gates, before anything is written: enforce violations reject
	// the revision, unresolvable tags (when digests are required) hold it.
	g := r.gate(ctx, app, snap, rev)
	ph.mark("gate")
	switch {
	case g.rejected != nil:
		r.reject(app, snap.Revision, g.reason, g.rejected)
		return poll, nil
	case g.held != nil:
		msg := fmt.Sprintf("sync of %s held: %v; the last applied revision %s keeps running", short(snap.Revision), g.held, short(app.Status.LastAppliedRevision))
		setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, g.reason, msg)
		setCondition(app, berthv1.ConditionReconciling, metav1.ConditionTrue, g.reason, msg)
		r.Recorder.Event(app, corev1.EventTypeWarning, g.reason, msg)
		r.metrics.Failures.WithLabelValues(app.Namespace, app.Name, g.reason).Inc()
		return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
	}
	rev.objects, rev.hooks, err = splitHooks(rev.kind, g.result.Objects)
	if err != nil {
		r.reject(app, snap.Revision, "InvalidHook", err)
		return poll, nil
	}
	if err := emptyRevision(app, rev); err != nil {
		r.reject(app, snap.Revision, "EmptyRevision", err)
		return poll, nil
	}

	// 4. Decide whether to write.
	syncRequested := app.Annotations[berthv1.SyncRequestedAnnotation] != "" &&
		app.Annotations[berthv1.SyncRequestedAnnotation] != app.Status.LastHandledSyncRequest
	automated := app.Spec.SyncPolicy.Automated == nil || *app.Spec.SyncPolicy.Automated
	newRevision := snap.Revision != app.Status.LastAppliedRevision
	digest := rev.stateDigest()
	// rerendered: the applied commit renders other manifests (the
	// Application's values or policy changed, or what a chart reads of
	// the cluster): a release like a new commit's, not a drift to heal.
	rerendered := !newRevision && app.Status.LastAppliedDigest != "" && digest != app.Status.LastAppliedDigest
	rev.moved = newRevision || rerendered
	stalled := meta.IsStatusConditionTrue(app.Status.Conditions, berthv1.ConditionStalled)
	if automated && !syncRequested && !drift && !fullDue && !stalled && app.Status.LastAppliedRevision != "" &&
		(!rev.moved || digest == app.Status.LastAppliedDigest) {
		// Nothing can have changed: same manifests, no watch event since
		// the last full pass. Record the revision and check health only.
		if newRevision {
			app.Status.LastAppliedRevision = snap.Revision
		}
		if checked, ok := r.lastHealthy.Load(key); ok && app.Status.Health == "Healthy" && time.Since(checked.(time.Time)) < healthRecheck {
			healthy(app, "")
			return ctrl.Result{RequeueAfter: r.interval(app)}, nil
		}
		return r.health(ctx, app, mgr, nil)
	}
	moved := rev.moved
	if (!automated && !syncRequested) || (!moved && !syncRequested && app.Spec.SyncPolicy.Drift == berthv1.DriftDetect) ||
		(!moved && !syncRequested && app.Spec.SyncPolicy.Drift == berthv1.DriftOff && app.Status.Sync == "Synced") {
		return r.observe(ctx, app, mgr, rev, moved)
	}

	// 5. The pre-sync data hook, before a release with new manifests.
	// A sync whose release record failed already ran its hook: the retry
	// reuses that snapshot rather than take one of data already migrated.
	if u, ok := r.unrecordedOf(app); ok && u.sha == snap.Revision && u.digest == digest && u.from == app.Status.CurrentRelease {
		rev.snapshot = u.snapshot
	} else if digest != app.Status.LastAppliedDigest && (moved || syncRequested) {
		// The hook Job is a write: a revision the API server would refuse
		// is rejected before it starts a backup, like any other write.
		// Once per move: while the hook runs, the requeues do not dry-run
		// the revision again.
		move := fmt.Sprintf("%s/%s/r%d/%s", snap.Revision, digest, app.Status.CurrentRelease, r.impersonatedUser(app))
		if v, _ := r.validated.Load(key); v != move {
			if _, hooked := rev.hooks[hookPreSync]; hooked {
				if _, err := mgr.Validate(ctx, rev.objects); err != nil {
					if transient(err) {
						return r.retrySoon(app, snap.Revision, err), nil
					}
					r.reject(app, snap.Revision, reasonFor(err), err)
					return poll, nil
				}
				r.validated.Store(key, move)
			}
		}
		snapshot, done, err := r.preSync(ctx, app, mgr, rev, digest)
		if err != nil || done {
			r.validated.Delete(key) // the next move, or a retry, validates again
		}
		if err != nil {
			r.reject(app, snap.Revision, reasonPreSyncHookFailed, err)
			return poll, nil
		}
		if !done {
			msg := fmt.Sprintf("revision %s: waiting for the pre-sync hook before applying", short(snap.Revision))
			setCondition(app, berthv1.ConditionReconciling, metav1.ConditionTrue, "PreSyncHook", msg)
			return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
		}
		rev.snapshot = snapshot
	}

	// 6. Apply (validates the whole revision first).
	cs, err := r.sync(ctx, app, mgr, rev)
	ph.mark("apply")
	handledBefore := app.Status.LastHandledSyncRequest
	if syncRequested {
		app.Status.LastHandledSyncRequest = app.Annotations[berthv1.SyncRequestedAnnotation]
	}
	if err != nil {
		if transient(err) {
			return r.retrySoon(app, snap.Revision, err), nil
		}
		if reason := reasonFor(err); reason == "ApplyFailed" {
			// Validation passed, a write failed (quota, webhook, a race):
			// worth retrying soon rather than waiting for the next commit.
			r.transientTries.Delete(key)
			msg := fmt.Sprintf("revision %s failed to apply: %v", short(snap.Revision), err)
			setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, reason, msg)
			setCondition(app, berthv1.ConditionReconciling, metav1.ConditionTrue, reason, msg)
			r.Recorder.Event(app, corev1.EventTypeWarning, reason, msg)
			r.metrics.Failures.WithLabelValues(app.Namespace, app.Name, reason).Inc()
			return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
		}
		reason := reasonFor(err)
		r.reject(app, snap.Revision, reason, err)
		if reason == reasonClaimed {
			// The other Application may drop the object any time: look
			// again soon rather than at the next poll.
			return ctrl.Result{RequeueAfter: 15 * time.Second}, nil
		}
		return poll, nil
	}
	if cs.Changed() {
		for _, a := range []apply.Action{apply.Created, apply.Configured, apply.Deleted} {
			if n := cs.Count(a); n > 0 {
				r.metrics.AppliedObjects.WithLabelValues(app.Namespace, app.Name, string(a)).Add(float64(n))
			}
		}
		if newRevision {
			r.Recorder.Eventf(app, corev1.EventTypeNormal, "Applied", "revision %s applied: %s", short(snap.Revision), cs.Summary())
		} else if rerendered {
			r.Recorder.Eventf(app, corev1.EventTypeNormal, "Applied", "revision %s rendered anew (the Application's spec, or what its chart reads, changed) and applied: %s", short(snap.Revision), cs.Summary())
		} else {
			r.metrics.Healed.WithLabelValues(app.Namespace, app.Name).Inc()
			if app.Status.Drift == nil {
				app.Status.Drift = &berthv1.DriftSummary{}
			}
			app.Status.Drift.Healed++
			app.Status.Drift.DetectedAt = ptrTime(metav1.Now())
			app.Status.Drift.Objects = changedIDs(cs)
			r.Recorder.Eventf(app, corev1.EventTypeNormal, "DriftHealed", "re-applied revision %s: %s", short(snap.Revision), cs.Summary())
		}
	}
	// The release is recorded before the revision counts as applied: if
	// the record fails, the next pass retries it (the apply is then a
	// no-op) instead of reporting Ready with no way back recorded.
	if moved || syncRequested || app.Status.CurrentRelease == 0 {
		trigger := berthv1.TriggerCommit
		if rerendered {
			trigger = berthv1.TriggerRender
		}
		if pushed && newRevision {
			trigger = berthv1.TriggerWebhook
		}
		if syncRequested {
			trigger = berthv1.TriggerManual
		}
		if err := r.recordRelease(ctx, app, rev, pinsOf(g.result), trigger); err != nil {
			msg := fmt.Sprintf("revision %s applied, but its release could not be recorded: %v; retrying", short(snap.Revision), err)
			setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, "ReleaseNotRecorded", msg)
			setCondition(app, berthv1.ConditionReconciling, metav1.ConditionTrue, "ReleaseNotRecorded", msg)
			r.Recorder.Event(app, corev1.EventTypeWarning, "ReleaseNotRecorded", msg)
			r.metrics.Failures.WithLabelValues(app.Namespace, app.Name, "ReleaseNotRecorded").Inc()
			// The retry must come back here: a manual sync stays unhandled,
			// and the hook's snapshot is kept for it.
			app.Status.LastHandledSyncRequest = handledBefore
			if pushed {
				r.webhookTriggered.Store(key, struct{}{})
			}
			r.keepUnrecorded(app, unrecordedSync{sha: snap.Revision, digest: digest, snapshot: rev.snapshot, from: app.Status.CurrentRelease})
			return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
		}
		r.dropUnrecorded(app)
	}
	if moved {
		now := metav1.Now() // the health timeout runs from here
		app.Status.LastAppliedAt = &now
	}
	app.Status.LastAppliedRevision = snap.Revision
	app.Status.LastAppliedDigest = digest
	app.Status.Images = pinsOf(g.result)
	r.lastFull.Store(key, time.Now())
	app.Status.Sync = "Synced"
	r.metrics.Drift.WithLabelValues(app.Namespace, app.Name).Set(0)
	meta.RemoveStatusCondition(&app.Status.Conditions, berthv1.ConditionStalled)
	meta.RemoveStatusCondition(&app.Status.Conditions, berthv1.ConditionDrifted)
	r.transientTries.Delete(key)
	r.watcher.ensure(ctx, app, app.Status.Inventory)
	seed := r.seedHealth(app, cs)
	defer ph.mark("health")
	return r.health(ctx, app, mgr, seed)
}

// credentials reads the Application's Git credentials Secret.
func (r *Reconciler) credentials(ctx context.Context, app *berthv1.Application) (*source.Auth, error) {
	if app.Spec.Source.SecretRef == nil {
		return nil, nil
	}
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Spec.Source.SecretRef.Name}
	if err := r.Get(ctx, key, s); err != nil {
		return nil, fmt.Errorf("reading credentials Secret %s: %w", key, err)
	}
	return source.AuthFromSecretData(s.Data), nil
}

// impersonatedUser is the user every write for app is made as (see
// ImpersonatedUser).
func (r *Reconciler) impersonatedUser(app *berthv1.Application) string {
	return ImpersonatedUser(app, r.DefaultServiceAccount)
}

// crossNamespace says why app may not act as the account it names, or "".
// Whoever may create an Application in a namespace picks the account every
// write is made as: were any namespace's accounts theirs to pick, a tenant
// could act as kube-system's controllers. Outside the trusted namespaces an
// Application therefore deploys only into its own namespace, as one of its
// service accounts.
func (r *Reconciler) crossNamespace(app *berthv1.Application) string {
	if slices.Contains(r.TrustedNamespaces, app.Namespace) {
		return ""
	}
	trusted := "none"
	if len(r.TrustedNamespaces) > 0 {
		trusted = strings.Join(r.TrustedNamespaces, ", ")
	}
	if sa := app.Spec.ServiceAccountName; strings.Contains(sa, ":") {
		return fmt.Sprintf("spec.serviceAccountName %q is a user name: an Application in namespace %s acts only as a service account of its own namespace, named bare; Applications that act as other users live in a trusted namespace (%s: the agent's --trusted-namespaces)", sa, app.Namespace, trusted)
	}
	if sa := r.DefaultServiceAccount; app.Spec.ServiceAccountName == "" && strings.Contains(sa, ":") {
		return fmt.Sprintf("the Application names no service account, and the agent's --default-service-account is a user name (%s): an Application in namespace %s acts only as a service account of its own namespace; name one in spec.serviceAccountName, or create the Application in a trusted namespace (%s: the agent's --trusted-namespaces)", sa, app.Namespace, trusted)
	}
	if app.Spec.Namespace != app.Namespace {
		return fmt.Sprintf("spec.namespace is %s: an Application in namespace %s deploys only into %s, as one of its service accounts; Applications that deploy into other namespaces live in a trusted namespace (%s: the agent's --trusted-namespaces)", app.Spec.Namespace, app.Namespace, app.Namespace, trusted)
	}
	return ""
}

// ImpersonatedUser is the user the agent writes app's objects as: its
// service account in the destination namespace, or defaultSA (a bare name,
// or a full user name such as system:serviceaccount:ns:name); "" when there
// is neither.
func ImpersonatedUser(app *berthv1.Application, defaultSA string) string {
	sa := app.Spec.ServiceAccountName
	if sa == "" {
		sa = defaultSA
	}
	switch {
	case sa == "":
		return ""
	case strings.Contains(sa, ":"):
		return sa
	}
	return "system:serviceaccount:" + app.Spec.Namespace + ":" + sa
}

// account is what the agent uses to act as one Application's user:
// everything it writes, and everything it reads of what Applications own,
// goes through these.
type account struct {
	apply    *apply.Manager     // dry runs, applies, health, prune
	metadata metadata.Interface // drift watches
	reader   client.Reader      // hook Jobs (uncached)
}

// accountOf returns app's account, made once per user.
func (r *Reconciler) accountOf(app *berthv1.Application) (*account, error) {
	user := r.impersonatedUser(app)
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.accounts[user]; ok {
		return a, nil
	}
	cfg := r.impersonatedConfig(app)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating client for %s: %w", user, err)
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating metadata client for %s: %w", user, err)
	}
	rc, err := client.New(cfg, client.Options{Scheme: r.Scheme(), Mapper: r.Mapper})
	if err != nil {
		return nil, fmt.Errorf("creating client for %s: %w", user, err)
	}
	a := &account{apply: apply.NewManager(dyn, r.Mapper), metadata: mc, reader: rc}
	if r.accounts == nil {
		r.accounts = map[string]*account{}
	}
	r.accounts[user] = a
	return a, nil
}

// manager returns the apply.Manager impersonating app's user.
func (r *Reconciler) manager(app *berthv1.Application) (*apply.Manager, error) {
	a, err := r.accountOf(app)
	if err != nil {
		return nil, err
	}
	return a.apply.WithGuard(r.claimedElsewhere(app)), nil
}

// otherHelmRelease refuses, for an Application that installs a chart, an
// object another Helm release installed (its meta.helm.sh annotations
// name that release): Helm adopts what exists (berth lets it, for its own
// objects and those no one claims), and would take it from the other
// release, whose next upgrade then fails and whose uninstall deletes it.
// Installing the chart as that release takes its objects over; so does
// the Application's own object (labelled as its), from its release of
// another name.
func otherHelmRelease(app *berthv1.Application, live *unstructured.Unstructured) error {
	if app.Status.Renderer != string(render.Helm) {
		return nil
	}
	a := live.GetAnnotations()
	rel, relNS := a["meta.helm.sh/release-name"], a["meta.helm.sh/release-namespace"]
	if rel == "" {
		return nil
	}
	opts, err := RenderOptions(app)
	if err != nil || (rel == opts.ReleaseName && relNS == app.Spec.Namespace) {
		return nil
	}
	if l := live.GetLabels(); l[berthv1.OwnerNameLabel] == LabelValue(app.Name) && l[berthv1.OwnerNamespaceLabel] == app.Namespace {
		return nil // the Application's own, from its release of another name
	}
	return fmt.Errorf("%w: Helm release %s in namespace %s installed it (its meta.helm.sh annotations); a chart takes over only what its own release installed: set spec.helm.releaseName to %s to take that release over, or remove the annotations", ErrClaimed, rel, relNS, rel)
}

// claimedElsewhere refuses to write over an object that another
// Application applied and still declares: with one field manager for
// every Application, both would apply it in turn, each undoing the other,
// and whichever pruned it last would delete it. An object whose
// Application is gone, or no longer lists it, is taken over.
func (r *Reconciler) claimedElsewhere(app *berthv1.Application) apply.Guard {
	// Uncached: the cache holds only the watched namespaces (and the
	// guard reads only for an object labelled by another Application).
	var reader client.Reader = r.Client
	if r.APIReader != nil {
		reader = r.APIReader
	}
	return ClaimGuard(reader, app)
}

// ClaimGuard refuses, for app, an object another Helm release installed
// or another Application still declares: the agent's guard, for `berth
// diff` too.
func ClaimGuard(reader client.Reader, app *berthv1.Application) apply.Guard {
	return func(ctx context.Context, live *unstructured.Unstructured) error {
		if err := otherHelmRelease(app, live); err != nil {
			return err
		}
		l := live.GetLabels()
		name, ns := l[berthv1.OwnerNameLabel], l[berthv1.OwnerNamespaceLabel]
		if name == "" || (name == LabelValue(app.Name) && ns == app.Namespace) {
			return nil
		}
		other := &berthv1.Application{}
		if err := reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, other); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("%w: Application %s/%s applied it, and reading it failed (%w); if it no longer exists, remove the labels %s and %s from the object", ErrClaimed, ns, name, err, berthv1.OwnerNameLabel, berthv1.OwnerNamespaceLabel)
		}
		gk := live.GroupVersionKind().GroupKind()
		for _, ref := range other.Status.Inventory {
			if ref.Group == gk.Group && ref.Kind == gk.Kind && ref.Namespace == live.GetNamespace() && ref.Name == live.GetName() {
				return fmt.Errorf("%w: Application %s/%s applied it and declares it too; remove it from one of them (the other takes it over once the first no longer lists it)", ErrClaimed, ns, name)
			}
		}
		return nil
	}
}

// ErrClaimed refuses an object another Application declares.
var ErrClaimed = errors.New("object belongs to another Application")

// reasonClaimed is the condition reason of a revision refused for
// ErrClaimed.
const reasonClaimed = "ObjectClaimed"

// impersonatedConfig is the agent's configuration acting as app's user.
func (r *Reconciler) impersonatedConfig(app *berthv1.Application) *rest.Config {
	c := rest.CopyConfig(r.Config)
	c.Impersonate = rest.ImpersonationConfig{UserName: r.impersonatedUser(app)}
	return c
}

// stall marks app Stalled: retrying the same input cannot help.
func (r *Reconciler) stall(app *berthv1.Application, reason, msg string) {
	setCondition(app, berthv1.ConditionStalled, metav1.ConditionTrue, reason, msg)
	setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, reason, msg)
	setCondition(app, berthv1.ConditionReconciling, metav1.ConditionFalse, reason, msg)
	r.metrics.Failures.WithLabelValues(app.Namespace, app.Name, reason).Inc()
	r.Recorder.Event(app, corev1.EventTypeWarning, reason, msg)
}

// emptyRevision refuses a revision that renders no object for an
// Application that holds some, unless spec.syncPolicy.allowEmpty says an
// empty app is meant: applied, it would prune them all.
func emptyRevision(app *berthv1.Application, rev *revision) error {
	if len(rev.objects) > 0 || len(app.Status.Inventory) == 0 || app.Spec.SyncPolicy.AllowEmpty {
		return nil
	}
	return fmt.Errorf("%s renders no object; applying it would prune all %d objects the Application holds "+
		"(a wrong path, or an overlay that selects nothing?); if an empty app is meant, set spec.syncPolicy.allowEmpty: true",
		orDot(app.Spec.Source.Path), len(app.Status.Inventory))
}

func orDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// answered marks app's pending sync request (`berth sync`) as handled by
// the refusal being recorded: the CLI, which waits for it, then shows the
// refusal instead of waiting out its timeout. A later request tries again.
func answered(app *berthv1.Application) {
	if tok := app.Annotations[berthv1.SyncRequestedAnnotation]; tok != "" {
		app.Status.LastHandledSyncRequest = tok
	}
}

// keepTransitions gives every condition whose status a pass left as it
// found it the transition time it had: a pass marks the Application
// Reconciling while it fetches, and one that ends as it began (a poll
// that finds nothing to do) is no transition, nor a reason to write.
func keepTransitions(before, app *berthv1.Application) {
	for i := range app.Status.Conditions {
		c := &app.Status.Conditions[i]
		if was := meta.FindStatusCondition(before.Status.Conditions, c.Type); was != nil && was.Status == c.Status {
			c.LastTransitionTime = was.LastTransitionTime
		}
	}
}

// transient reports whether a sync's err says nothing of the revision,
// only of the API server at that moment (see apply.Transient): every
// object's dry run, or the Helm release's read or write, failed so.
func transient(err error) bool {
	if errors.Is(err, errHelmFailed) {
		return false
	}
	var ve *apply.ValidationError
	if errors.As(err, &ve) {
		return ve.Transient()
	}
	var we *apply.WriteError
	if errors.As(err, &we) {
		return false // retried soon as ApplyFailed
	}
	return apply.Transient(err)
}

// reasonClusterUnavailable: the API server could not judge the revision
// (unreachable, overloaded, an admission webhook it cannot call).
const reasonClusterUnavailable = "ClusterUnavailable"

// retrySoon records that revision could not be checked or applied for a
// reason that may pass (see transient): not a rejection; the last good
// revision keeps running and the pass is retried. Tries in a row back off
// (10 s, 20 s, 40 s ... up to the poll); after stallAfterRetries of them
// the Application is Stalled too (something that lasts, such as a
// misconfigured webhook, needs a person), and still retried. A pass the
// API server answers (a success, a rejection, a failed write) starts the
// count again.
func (r *Reconciler) retrySoon(app *berthv1.Application, revision string, err error) ctrl.Result {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	n := 0
	if v, ok := r.transientTries.Load(key); ok {
		n = v.(int)
	}
	r.transientTries.Store(key, n+1)
	wait := min(r.interval(app), 10*time.Second<<min(n, 10))
	msg := fmt.Sprintf("revision %s could not be checked against the cluster: %v; retrying in %s, the last applied revision %s keeps running",
		short(revision), err, wait, short(app.Status.LastAppliedRevision))
	if n+1 >= stallAfterRetries {
		r.stall(app, reasonClusterUnavailable, fmt.Sprintf("%s (%d tries in a row)", msg, n+1))
		return ctrl.Result{RequeueAfter: wait}
	}
	setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, reasonClusterUnavailable, msg)
	setCondition(app, berthv1.ConditionReconciling, metav1.ConditionTrue, reasonClusterUnavailable, msg)
	r.Recorder.Event(app, corev1.EventTypeWarning, reasonClusterUnavailable, msg)
	r.metrics.Failures.WithLabelValues(app.Namespace, app.Name, reasonClusterUnavailable).Inc()
	return ctrl.Result{RequeueAfter: wait}
}

// stallAfterRetries is how many transient failures in a row make an
// Application Stalled (see retrySoon).
const stallAfterRetries = 5

// reasonPreSyncHookFailed: the revision's pre-sync data hook failed.
const reasonPreSyncHookFailed = "PreSyncHookFailed"

// reject records a rejected revision: nothing of it was applied and the
// last good revision keeps running. It answers a pending sync request.
func (r *Reconciler) reject(app *berthv1.Application, revision, reason string, err error) {
	answered(app)
	// The API server answered: transient failures in a row end here.
	r.transientTries.Delete(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})
	msg := fmt.Sprintf("revision %s rejected: %v", short(revision), err)
	if app.Status.LastAppliedRevision != "" {
		msg += fmt.Sprintf(" (still running %s)", short(app.Status.LastAppliedRevision))
	}
	app.Status.Sync = "Failed"
	r.stall(app, reason, msg)
}

func reasonFor(err error) string {
	var ve *apply.ValidationError
	if errors.As(err, &ve) {
		if ve.Forbidden() {
			return "PermissionDenied"
		}
		for _, p := range ve.Problems {
			if errors.Is(p.Err, ErrClaimed) {
				return reasonClaimed
			}
		}
		return "ValidationFailed"
	}
	var ae *apply.WriteError
	if errors.As(err, &ae) {
		return "ApplyFailed"
	}
	if errors.Is(err, errReleaseTaken) {
		return "ReleaseNameTaken"
	}
	return "SyncFailed"
}

func setCondition(app *berthv1.Application, typ string, st metav1.ConditionStatus, reason, msg string) {
	if len(msg) > 32000 {
		msg = msg[:32000] + "..."
	}
	meta.SetStatusCondition(&app.Status.Conditions, metav1.Condition{
		Type: typ, Status: st, Reason: reason, Message: msg, ObservedGeneration: app.Generation,
	})
}

func short(sha string) string {
	if len(sha) > 8 {
		return sha[:8]
	}
	if sha == "" {
		return "(none)"
	}
	return sha
}

func ptrTime(t metav1.Time) *metav1.Time { return &t }

func changedIDs(cs apply.ChangeSet) []string {
	var out []string
	for _, e := range cs.Entries {
		if e.Action == apply.Created || e.Action == apply.Configured || e.Action == apply.Deleted {
			out = append(out, e.ID)
		}
	}
	return out
}

func deref(r *ctrl.Result) ctrl.Result {
	if r == nil {
		return ctrl.Result{}
	}
	return *r
}
