package application

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/helmrelease"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/render"
)

// ensureFinalizer sets berth's cleanup finalizer on app, once: a deleted
// Application then waits for the agent to prune what it applied (see
// finalize). The write is a metadata patch guarded by app's
// resourceVersion; a conflict is retried by the caller's requeue.
func (r *Reconciler) ensureFinalizer(ctx context.Context, app *berthv1.Application) error {
	if controllerutil.ContainsFinalizer(app, berthv1.CleanupFinalizer) {
		return nil
	}
	orig := app.DeepCopy()
	controllerutil.AddFinalizer(app, berthv1.CleanupFinalizer)
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	if err := r.Patch(ctx, app, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		// A conflict means the cache was behind: the retry reads the API
		// server (see read).
		r.written.Store(key, unknownVersion)
		if apierrors.IsConflict(err) {
			return fmt.Errorf("setting the finalizer %s: %w", berthv1.CleanupFinalizer, err)
		}
		// Refused (an install without the right, an admission policy):
		// the Application syncs all the same, only a deletion will not
		// clean up. Said once per process and Application.
		*app = *orig
		if _, said := r.finalizerRefused.LoadOrStore(key, struct{}{}); !said {
			r.Recorder.Eventf(app, corev1.EventTypeWarning, "FinalizerRefused", "cannot set the finalizer %s (%v): deleting this Application will not delete what it applied", berthv1.CleanupFinalizer, err)
		}
		return nil
	}
	// The status written at the end of the pass is read back from here.
	r.written.Store(key, app.ResourceVersion)
	return nil
}

// finalize lets a deleted Application go, after pruning what it applied:
// every object of its inventory, as a sync prunes what Git dropped
// (owned objects only, PersistentVolumeClaims, PersistentVolumes,
// Namespaces and CRDs kept unless annotated berth.dev/prune: "true", any
// object annotated "false" kept), as its own service account, in Helm's
// uninstall order, and the records of its Helm release. It keeps
// everything when keepAll says so (suspended, prune off, berth being
// uninstalled). When its account may no longer delete (its RoleBinding went
// first, as in a namespace being deleted) the objects are kept and an event
// lists them: a finalizer that can never finish would hold the namespace
// in Terminating for good. Other errors are retried for cleanupPatience.
// Its releases go with it (they are owned by it).
func (r *Reconciler) finalize(ctx context.Context, app *berthv1.Application) (ctrl.Result, error) {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	if !controllerutil.ContainsFinalizer(app, berthv1.CleanupFinalizer) {
		r.forget(key)
		return ctrl.Result{}, nil
	}
	if len(app.Status.Inventory) > 0 {
		// A cleanup running off the workers (a chart's) decides: it is
		// waited for, or its outcome taken, before anything else is
		// looked at.
		wait, busy := r.cleanupBusy(app)
		if busy {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
		ended, err := r.cleanupOutcome(app)
		if !ended {
			if why, warn, kerr := r.keepAll(ctx, app); kerr != nil {
				err = kerr
			} else if why != "" {
				typ := corev1.EventTypeNormal
				if warn {
					typ = corev1.EventTypeWarning
				}
				r.Recorder.Eventf(app, typ, "CleanupSkipped", "%s: the %d object(s) it applied are kept", why, len(app.Status.Inventory))
			} else if r.cleanUpOffWorker(ctx, app) == inPlace {
				err = r.cleanUp(ctx, app)
			} else {
				return ctrl.Result{RequeueAfter: cleanupPoll}, nil
			}
		}
		if err != nil {
			// A failure that is not a refusal (a webhook down, an API
			// that does not answer) is retried for a while, not for
			// ever: a finalizer that never finishes holds the namespace.
			if since := app.DeletionTimestamp; since != nil && time.Since(since.Time) < cleanupPatience {
				r.noteCleanup(ctx, app, fmt.Sprintf("deleted; cleaning up failed: %v; retrying until %s, then what is left is kept",
					err, since.Add(cleanupPatience).UTC().Format(time.TimeOnly)+" UTC"))
				return ctrl.Result{}, err
			}
			r.Recorder.Eventf(app, corev1.EventTypeWarning, "CleanupFailed", "gave up after %s: %v; what was not deleted is kept", cleanupPatience, err)
		}
	}
	orig := app.DeepCopy()
	controllerutil.RemoveFinalizer(app, berthv1.CleanupFinalizer)
	if err := r.Patch(ctx, app, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("removing the finalizer %s: %w", berthv1.CleanupFinalizer, err)
	}
	r.forget(key)
	return ctrl.Result{}, nil
}

// cleanupPoll is how often a deleted Application whose cleanup runs off
// the workers is looked at; the run also asks for a pass when it ends.
const cleanupPoll = 10 * time.Second

// cleanupRun is one cleanup running off the workers, and what finalize
// took of its outcome. done is closed once err is set; collected,
// failures and the entry itself belong to the Application's reconciles
// (one at a time per Application).
type cleanupRun struct {
	uid    types.UID
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	// failures counts the failed runs before this one, in a row.
	failures int
	// collected is when finalize took the outcome: a failed run's retry
	// waits for retryAfter; a successful one is kept, so that a pass
	// after a failed finalizer removal does not clean up again.
	collected time.Time
}

func (c *cleanupRun) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// retryAfter is how long after a failed run the next one starts: a
// failing pre-delete hook is not run again at once, nor ever less than a
// poll apart (10 s, 20 s, 40 s ... up to 2 minutes).
func (c *cleanupRun) retryAfter() time.Duration {
	return min(cleanupPoll<<min(c.failures, 4), 2*time.Minute)
}

// runOf returns app's cleanup run, if any (one of an earlier Application
// of the same name is not app's).
func (r *Reconciler) runOf(app *berthv1.Application) *cleanupRun {
	v, ok := r.cleanups.Load(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})
	if !ok || v.(*cleanupRun).uid != app.UID {
		return nil
	}
	return v.(*cleanupRun)
}

// cleanupBusy reports whether app's cleanup runs off the workers, or
// failed and waits for its retry, and how long to wait before looking
// again.
func (r *Reconciler) cleanupBusy(app *berthv1.Application) (time.Duration, bool) {
	run := r.runOf(app)
	switch {
	case run == nil:
		return 0, false
	case !run.ended():
		return cleanupPoll, true
	case run.collected.IsZero() || run.err == nil || patienceOver(app):
		return 0, false
	}
	left := min(run.retryAfter()-time.Since(run.collected), time.Until(app.DeletionTimestamp.Add(cleanupPatience)))
	if left > 0 {
		return left, true
	}
	return 0, false
}

// cleanupOutcome returns the outcome of app's cleanup run once it ended
// (ended false: there is none to act on, and a run, or its retry, is to
// start). A failed run's outcome is taken once, unless the patience is
// over; a successful one's every time.
func (r *Reconciler) cleanupOutcome(app *berthv1.Application) (bool, error) {
	run := r.runOf(app)
	switch {
	case run == nil || !run.ended():
		return false, nil
	case run.collected.IsZero():
		run.collected = time.Now()
		return true, run.err
	case run.err == nil || patienceOver(app):
		return true, run.err
	}
	return false, nil
}

func patienceOver(app *berthv1.Application) bool {
	return app.DeletionTimestamp != nil && time.Since(app.DeletionTimestamp.Time) >= cleanupPatience
}

// cleanUpOffWorker starts cleanUp for a deleted Helm Application in a
// goroutine of its own, and reports whether it did: Helm waits for a
// chart's delete hooks (each up to the Application's health timeout), and
// a worker held that long would hold up every other Application's syncs,
// rollbacks and health checks. The run lasts as long as this process
// leads (the manager waits for it when it stops; a new leader runs the
// cleanup again) or until forget cancels it. finalize waits for it and
// acts on its outcome as on a cleanup run in place (see cleanupBusy and
// cleanupOutcome). Other Applications, and a Reconciler without a
// manager, clean up in place. The retry count lives in this process: a
// new leader starts the cleanup at once (the patience counts from the
// deletion; Helm's record says whether the pre-delete hooks ran).
func (r *Reconciler) cleanUpOffWorker(ctx context.Context, app *berthv1.Application) cleanupStart {
	r.cleanupMu.Lock()
	defer r.cleanupMu.Unlock()
	lead := r.leading
	switch {
	case app.Status.Renderer != string(render.Helm) || !r.offWorker:
		return inPlace
	case lead == nil || lead.Err() != nil:
		// Leadership not yet seen by leadCleanups, or over: a worker
		// must not run a chart's hooks instead.
		return notNow
	}
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	failures := 0
	if prev := r.runOf(app); prev != nil {
		failures = prev.failures + 1
	}
	runCtx, cancel := context.WithCancel(ctrl.LoggerInto(lead, ctrl.LoggerFrom(ctx)))
	run := &cleanupRun{uid: app.UID, cancel: cancel, done: make(chan struct{}), failures: failures}
	r.cleanups.Store(key, run)
	own := app.DeepCopy()
	r.cleanupRuns.Add(1)
	go func() {
		defer r.cleanupRuns.Done()
		defer r.enqueue(key.Namespace, key.Name, priorityNormal)
		defer close(run.done)
		defer cancel()
		defer func() {
			// A worker's panic is recovered by controller-runtime; this
			// goroutine's would end the agent.
			if p := recover(); p != nil {
				run.err = fmt.Errorf("the cleanup panicked: %v", p)
			}
		}()
		run.err = r.cleanUp(runCtx, own)
	}()
	return started
}

// cleanupStart is what cleanUpOffWorker did.
type cleanupStart int

const (
	// inPlace: not a chart, or no manager: the caller cleans up itself.
	inPlace cleanupStart = iota
	// started: the cleanup runs off the workers.
	started
	// notNow: a chart's cleanup, while this process does not lead: the
	// caller looks again later.
	notNow
)

// leadCleanups runs while this process leads: cleanups may start off the
// workers until ctx ends, and it returns once the last has ended (the
// manager waits for it, within its grace period).
func (r *Reconciler) leadCleanups(ctx context.Context) error {
	r.cleanupMu.Lock()
	r.leading = ctx
	r.cleanupMu.Unlock()
	<-ctx.Done()
	r.cleanupMu.Lock()
	r.leading = nil // no run starts after this
	r.cleanupMu.Unlock()
	r.cleanupRuns.Wait()
	return nil
}

// earlierCleanupRuns reports whether the cleanup of an earlier Application
// of app's name still runs off the workers; it cancels it (that
// Application is gone) and drops it once it has ended.
func (r *Reconciler) earlierCleanupRuns(app *berthv1.Application) bool {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	v, ok := r.cleanups.Load(key)
	if !ok || v.(*cleanupRun).uid == app.UID {
		return false
	}
	r.stopCleanup(key)
	_, still := r.cleanups.Load(key)
	return still
}

// stopCleanup cancels the cleanup run of the Application key, if any
// (see forget). The entry stays until the run has ended, so that one
// created again under the same name waits for it.
func (r *Reconciler) stopCleanup(key types.NamespacedName) {
	v, ok := r.cleanups.Load(key)
	if !ok {
		return
	}
	run := v.(*cleanupRun)
	run.cancel()
	if run.ended() {
		r.cleanups.CompareAndDelete(key, run)
	}
}

// noteCleanup says in app's status what its cleanup waits for (Ready
// False, reason Deleting), for `berth get apps` and kubectl: a chart's
// delete hooks, or a retry. A status that cannot be written is only
// logged: the cleanup goes on.
func (r *Reconciler) noteCleanup(ctx context.Context, app *berthv1.Application, msg string) {
	before := app.DeepCopy()
	meta.RemoveStatusCondition(&app.Status.Conditions, berthv1.ConditionStalled)
	setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, "Deleting", msg)
	setCondition(app, berthv1.ConditionReconciling, metav1.ConditionTrue, "Deleting", msg)
	if err := r.writeStatus(ctx, before, app); err != nil {
		ctrl.LoggerFrom(ctx).Info("cannot write the cleanup's status", "error", err.Error())
	}
}

// keepAll returns why a deleted app keeps everything it applied ("": it
// does not), and whether that deserves a warning. An error is one a retry
// may get past (the API server busy or unreachable): nothing is decided.
func (r *Reconciler) keepAll(ctx context.Context, app *berthv1.Application) (string, bool, error) {
	switch {
	case app.Spec.Suspend:
		return "deleted while suspended", false, nil
	case !PruneOn(app):
		return "deleted with prune off", false, nil
	case r.impersonatedUser(app) == "":
		return "deleted without a service account to act as", true, nil
	}
	switch uninstall, err := r.crdDeleting(ctx); {
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		// berth's own rights going away is how an uninstall looks too.
		return fmt.Sprintf("cannot tell whether berth is being uninstalled (%v)", err), true, nil
	case err != nil:
		return "", false, err
	case uninstall:
		return "deleted with berth's Application CRD (berth uninstalled)", false, nil
	}
	return "", false, nil
}

// cleanupPatience is how long a deleted Application's cleanup is retried
// before it is let go with what could not be deleted.
const cleanupPatience = 10 * time.Minute

// applicationCRD is the name of berth's Application CRD.
const applicationCRD = "applications.berth.dev"

// crdDeleting reports whether berth's Application CRD is being deleted (or
// gone): berth is being uninstalled, and the Applications go with the CRD,
// not because anyone wants their objects deleted.
func (r *Reconciler) crdDeleting(ctx context.Context) (bool, error) {
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	err := reader.Get(ctx, types.NamespacedName{Name: applicationCRD}, crd)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading CustomResourceDefinition %s: %w", applicationCRD, err)
	}
	return crd.DeletionTimestamp != nil, nil
}

// cleanUp prunes app's inventory (see finalize). A chart's release is
// uninstalled through Helm, which runs its pre-delete hooks, then lets the
// prune delete the objects, then runs its post-delete hooks and deletes
// its records. It returns an error only for what a retry may fix.
func (r *Reconciler) cleanUp(ctx context.Context, app *berthv1.Application) error {
	mgr, err := r.manager(app)
	if err != nil {
		return err
	}
	var cs apply.ChangeSet
	var perr error
	pruned := false
	prune := func() error {
		pruned = true
		cs, perr = mgr.Prune(ctx, refsOf(app.Status.Inventory), r.pruneOptions(app))
		// Even a refusal stops a Helm uninstall before its post-delete
		// hooks: the objects are still there.
		return perr
	}
	var helmMsg string
	var helmKept []string
	if app.Status.Renderer == string(render.Helm) {
		rel, name, err := r.ownHelmRelease(app)
		switch {
		case apierrors.IsForbidden(err):
			helmKept = append(helmKept, "the records of its Helm release (not allowed)")
		case err != nil:
			r.Recorder.Eventf(app, corev1.EventTypeWarning, "CleanupFailed", "reading its Helm release: %v; retrying", err)
			return err
		case rel != nil:
			if err := ctx.Err(); err != nil {
				return err // stopped before Helm's first write
			}
			if rel.DeleteHooks > 0 {
				r.noteCleanup(ctx, app, fmt.Sprintf("deleted; running the delete hooks of Helm release %s (each for up to %s)", name, r.healthTimeout(app)))
			}
			res, err := helmrelease.Uninstall(ctx, r.impersonatedConfig(app), app.Spec.Namespace, name, r.healthTimeout(app), prune)
			switch {
			case err != nil && ctx.Err() != nil:
				// Stopped (leadership over, or the Application gone): not a
				// failure to report; whoever leads next runs it again.
				return err
			case errors.Is(err, helmrelease.ErrPreDelete) && apierrors.IsForbidden(err):
				// The account may not run the hooks (its rights are
				// going, as in a namespace being deleted): nothing is
				// deleted without them, and the Application goes.
				r.Recorder.Eventf(app, corev1.EventTypeWarning, "CleanupSkipped", "deleted, but %s may not run the delete hooks of Helm release %s (%v): the %d object(s) it applied are kept",
					r.impersonatedUser(app), name, err, len(app.Status.Inventory))
				return nil
			case errors.Is(err, helmrelease.ErrPreDelete):
				// Nothing is deleted, as helm uninstall would; each
				// retry runs the hook again.
				r.Recorder.Eventf(app, corev1.EventTypeWarning, "CleanupFailed", "%v; nothing deleted; retrying", err)
				return err
			case err != nil && perr == nil && apierrors.IsForbidden(err):
				helmKept = append(helmKept, "the records of its Helm release (not allowed)")
			case err != nil && perr == nil:
				r.Recorder.Eventf(app, corev1.EventTypeWarning, "CleanupFailed", "uninstalling Helm release %s: %v; retrying", name, err)
				return err
			case err == nil && res.PostDelete != nil:
				r.Recorder.Eventf(app, corev1.EventTypeWarning, "CleanupFailed", "a post-delete hook of Helm release %s failed: %v; its objects were deleted; the hook is not run again", name, res.PostDelete)
				helmMsg = fmt.Sprintf(", and Helm release %s uninstalled (a post-delete hook failed; %d revision(s) deleted)", name, res.Revisions)
			case err == nil && res.Hooks > 0:
				helmMsg = fmt.Sprintf(", and Helm release %s uninstalled (%d delete hook(s) run, %d revision(s) deleted)", name, res.Hooks, res.Revisions)
			case err == nil:
				helmMsg = fmt.Sprintf(", and %d revision(s) of Helm release %s", res.Revisions, name)
			}
		}
	}
	if !pruned {
		_ = prune()
	}
	var kept []string
	for _, e := range cs.Entries {
		if e.Action == apply.Skipped {
			kept = append(kept, e.ID+" ("+e.Reason+")")
		}
	}
	if we, ok := errors.AsType[*apply.WriteError](perr); ok && allForbidden(we) {
		for _, p := range we.Problems {
			kept = append(kept, p.ID+" (not allowed)")
		}
		r.Recorder.Eventf(app, corev1.EventTypeWarning, "CleanupSkipped", "deleted, but %s may not delete what it applied; kept: %s", r.impersonatedUser(app), strings.Join(kept, "; "))
		return nil
	}
	if perr != nil {
		r.Recorder.Eventf(app, corev1.EventTypeWarning, "CleanupFailed", "deleting what it applied: %v; retrying", perr)
		return perr
	}
	msg := fmt.Sprintf("deleted: %d object(s) it applied deleted", cs.Count(apply.Deleted)) + helmMsg
	kept = append(kept, helmKept...)
	if len(kept) > 0 {
		msg += "; kept: " + strings.Join(kept, "; ")
	}
	r.Recorder.Event(app, corev1.EventTypeNormal, "CleanedUp", msg)
	return nil
}

// ownHelmRelease returns the newest revision of app's Helm release, and
// the release's name, when the release is app's: its newest revision
// installs objects labelled as app's, and no other's (an Application
// refused for a release name another one uses never installed it). It
// returns nil when there is none, or it is not app's: its records, and
// its hooks, are left alone.
func (r *Reconciler) ownHelmRelease(app *berthv1.Application) (*helmrelease.Release, string, error) {
	opts, err := RenderOptions(app)
	if err != nil || opts.ReleaseName == "" {
		return nil, "", nil
	}
	latest, err := helmrelease.Latest(r.impersonatedConfig(app), app.Spec.Namespace, opts.ReleaseName)
	if err != nil || latest == nil {
		return nil, "", err
	}
	objs, err := manifest.Parse("helm release "+opts.ReleaseName, []byte(latest.Manifest))
	if err != nil || len(objs) == 0 {
		return nil, "", nil // not berth's: left alone
	}
	for _, o := range objs {
		l := o.Object.GetLabels()
		if l[berthv1.OwnerNameLabel] != LabelValue(app.Name) || l[berthv1.OwnerNamespaceLabel] != app.Namespace {
			return nil, "", nil
		}
	}
	return latest, opts.ReleaseName, nil
}

// allForbidden reports whether every problem of we is an RBAC denial.
func allForbidden(we *apply.WriteError) bool {
	for _, p := range we.Problems {
		if !apierrors.IsForbidden(p.Err) {
			return false
		}
	}
	return len(we.Problems) > 0
}
