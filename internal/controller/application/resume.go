package application

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/helmrelease"
	"github.com/berth-dev/berth/internal/release"
)

// resume finishes a rollback that an agent killed mid-way left undone. It
// runs once per Application per agent process, before Git is read, so a
// restarted agent never re-applies the commit it was rolling away from.
// The release records are the journal:
//
//   - the newest release is a rollback the Application's status does not
//     know (killed after recording it, before the status write): the pin is
//     restored from the record;
//   - the newest release is Failed and was never rolled back (killed while
//     re-applying the target, or inside a Helm rollback): the rollback runs
//     again; it is idempotent, and a Helm release left pending-rollback is
//     unlocked first (see helmrelease).
//
// It returns a non-nil result when it acted.
func (r *Reconciler) resume(ctx context.Context, app *berthv1.Application, mgr *apply.Manager) (*ctrl.Result, error) {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	if _, done := r.resumed.Load(key); done {
		return nil, nil
	}
	if app.Status.CurrentRelease == 0 {
		// Never released (a rollback needs an earlier release whose
		// status write went through): nothing to resume.
		r.resumed.Store(key, true)
		return nil, nil
	}
	store := r.freshReleases()
	rels, err := store.List(ctx, app.Namespace, app.Name)
	if err != nil {
		return nil, err
	}
	r.resumed.Store(key, true)
	if len(rels) == 0 {
		return nil, nil
	}
	newest := &rels[0]
	switch {
	case newest.Spec.Trigger == berthv1.TriggerRollback && newest.Spec.Number > app.Status.CurrentRelease:
		return r.pinRecorded(ctx, app, store, rels, "an agent that stopped before pinning it")

	// A `berth rollback` that failed after its restore (recorded in
	// status) comes first: its retry or hold, not an automatic rollback to
	// another release over the data it restored (see pendingManual).
	case newest.Status.Health == berthv1.ReleaseFailed && newest.Spec.Trigger != berthv1.TriggerRollback &&
		app.Status.Pin == nil && autoRollback(app) && app.Status.UnfinishedRollback == nil:
		target := release.LastHealthy(rels, newest.Spec.Number)
		if target == nil {
			return nil, nil
		}
		reason := fmt.Sprintf("release %d (commit %s) failed: %s (rollback resumed after an agent restart)", newest.Spec.Number, short(newest.Spec.Commit), newest.Status.Reason)
		if err := r.rollbackTo(ctx, app, mgr, target, newest.Spec.Commit, reason, ""); err != nil {
			return r.rollbackFailed(app, newest, target, err), nil
		}
		_ = store.SetOutcome(ctx, newest, berthv1.ReleaseRolledBack, fmt.Sprintf("%s; rolled back to release %d", newest.Status.Reason, target.Spec.Number))
		r.Recorder.Eventf(app, corev1.EventTypeNormal, "RollbackResumed", "release %d had failed and its rollback was interrupted; rolled back to release %d now", newest.Spec.Number, target.Spec.Number)
		return &ctrl.Result{RequeueAfter: 2 * time.Second}, nil
	}
	return nil, nil
}

// pendingRollback is a rollback away from release (at commit) that
// failed: an automatic one, or a `berth rollback` to target that failed
// after its data restore (manual).
type pendingRollback struct {
	release int64
	commit  string
	// hold: the failure cannot change by trying again (see rollbackFailed).
	hold bool
	msg  string
	// manual: a `berth rollback` (request) to release target. syncToken
	// is the `berth sync` request standing when it failed: only a newer
	// one ends it (a request left standing while pinned must not).
	manual    bool
	target    int64
	request   string
	syncToken string
}

// pinRecorded pins app to the newest release, a rollback recorded by
// someone (a process, an attempt) that did not get to pin it, and marks
// the release it rolled away from.
func (r *Reconciler) pinRecorded(ctx context.Context, app *berthv1.Application, store *release.Store, rels []berthv1.Release, by string) (*ctrl.Result, error) {
	newest := &rels[0]
	objs, err := r.workload(ctx, newest)
	if err != nil {
		return nil, err
	}
	from := app.Status.CurrentRelease
	reason := fmt.Sprintf("rollback to release %d, recorded by %s", newest.Spec.RollbackOf, by)
	r.pinTo(app, newest, objs, reason)
	for i := range rels {
		if rels[i].Spec.Number == from && rels[i].Status.Health == berthv1.ReleaseFailed {
			_ = store.SetOutcome(ctx, &rels[i], berthv1.ReleaseRolledBack, fmt.Sprintf("%s; rolled back to release %d", rels[i].Status.Reason, newest.Spec.RollbackOf))
		}
	}
	r.Recorder.Eventf(app, corev1.EventTypeNormal, "RollbackResumed", "release %d (a rollback to release %d) was recorded by %s; pinned now", newest.Spec.Number, newest.Spec.RollbackOf, by)
	return &ctrl.Result{RequeueAfter: 2 * time.Second}, nil
}

// rollbackFailed stalls app after the automatic rollback of failed to
// target failed, and keeps the rollback pending: the next passes retry it
// (retryRollback) instead of re-applying the failed commit, whose data its
// restore hook may already have taken back. A refusal that trying again
// cannot change (no restore path, tampered manifests, a failed hook Job)
// is held, not retried.
func (r *Reconciler) rollbackFailed(app *berthv1.Application, failed, target *berthv1.Release, err error) *ctrl.Result {
	hold := unchangeable(err)
	then := fmt.Sprintf("retried while Git points at %s", short(failed.Spec.Commit))
	if hold {
		then = fmt.Sprintf("not retried; release %d stays as it is until a new commit, `berth sync`, `berth unpin` or a `berth rollback` that succeeds", failed.Spec.Number)
	}
	msg := fmt.Sprintf("automatic rollback of release %d to release %d failed: %v; %s", failed.Spec.Number, target.Spec.Number, err, then)
	r.keepPending(app, pendingRollback{release: failed.Spec.Number, commit: failed.Spec.Commit, hold: hold, msg: msg})
	r.stall(app, "RollbackFailed", msg)
	if hold {
		return &ctrl.Result{RequeueAfter: r.interval(app)}
	}
	return &ctrl.Result{RequeueAfter: min(r.interval(app), 30*time.Second)}
}

// retryRollback retries the pending automatic rollback of app while Git
// still points at the failed release's commit, the failed release is the
// current one, nothing pinned the Application, automatic rollback is
// still on and no `berth sync` asks for Git. Otherwise (a new commit, a
// manual rollback or sync) the rollback is dropped and the pass goes on.
// It reports whether it took the pass.
func (r *Reconciler) retryRollback(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, revision string) (ctrl.Result, bool) {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	v, ok := r.pendingRollback.Load(key)
	if !ok {
		return ctrl.Result{}, false
	}
	p := v.(pendingRollback)
	if p.manual {
		return ctrl.Result{}, false // see retryManualRollback
	}
	syncRequested := app.Annotations[berthv1.SyncRequestedAnnotation] != "" &&
		app.Annotations[berthv1.SyncRequestedAnnotation] != app.Status.LastHandledSyncRequest
	if revision != p.commit || app.Status.Pin != nil || app.Status.CurrentRelease != p.release || !autoRollback(app) || syncRequested {
		r.dropPending(app)
		return ctrl.Result{}, false
	}
	store, rels, res := r.retryStart(ctx, app, p, fmt.Sprintf("the rollback of release %d", p.release))
	if res != nil {
		return *res, true
	}
	failed := release.Numbered(rels, p.release)
	target := release.LastHealthy(rels, p.release)
	if failed == nil || target == nil || failed.Status.Health != berthv1.ReleaseFailed {
		r.dropPending(app)
		return ctrl.Result{}, false
	}
	reason := fmt.Sprintf("release %d (commit %s) failed: %s (rollback retried)", failed.Spec.Number, short(failed.Spec.Commit), failed.Status.Reason)
	if err := r.rollbackTo(ctx, app, mgr, target, failed.Spec.Commit, reason, ""); err != nil {
		return *r.rollbackFailed(app, failed, target, err), true
	}
	r.dropPending(app)
	_ = store.SetOutcome(ctx, failed, berthv1.ReleaseRolledBack, fmt.Sprintf("%s; rolled back to release %d", failed.Status.Reason, target.Spec.Number))
	r.Recorder.Eventf(app, corev1.EventTypeNormal, "RollbackRetried", "the rollback of release %d to release %d failed earlier and succeeded on retry", failed.Spec.Number, target.Spec.Number)
	return ctrl.Result{RequeueAfter: 2 * time.Second}, true
}

// retryStart is how every retry of pending rollback p begins: a held one
// is reported, not retried; the history is read fresh; a rollback that an
// earlier attempt recorded before it failed is pinned. It returns the
// history to retry with, or the pass's result when it took the pass. what
// names the rollback in messages.
func (r *Reconciler) retryStart(ctx context.Context, app *berthv1.Application, p pendingRollback, what string) (*release.Store, []berthv1.Release, *ctrl.Result) {
	if p.hold {
		// Neither retried nor replaced by the commit rolled away from.
		setCondition(app, berthv1.ConditionStalled, metav1.ConditionTrue, "RollbackFailed", p.msg)
		setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, "RollbackFailed", p.msg)
		setCondition(app, berthv1.ConditionReconciling, metav1.ConditionFalse, "RollbackFailed", p.msg)
		return nil, nil, &ctrl.Result{RequeueAfter: r.interval(app)}
	}
	retry := &ctrl.Result{RequeueAfter: min(r.interval(app), 30*time.Second)}
	store := r.freshReleases()
	rels, err := store.List(ctx, app.Namespace, app.Name)
	if err != nil {
		r.stall(app, "RollbackFailed", fmt.Sprintf("retrying %s: %v", what, err))
		return nil, nil, retry
	}
	if len(rels) > 0 && rels[0].Spec.Trigger == berthv1.TriggerRollback && rels[0].Spec.Number > p.release {
		// The last attempt recorded its rollback before it failed. It
		// stays pending until the pin is set: a pass in between must not
		// apply the release rolled away from.
		res, err := r.pinRecorded(ctx, app, store, rels, "an earlier attempt that failed after recording it")
		if err != nil {
			r.stall(app, "RollbackFailed", fmt.Sprintf("pinning rollback release %d: %v", rels[0].Spec.Number, err))
			return nil, nil, retry
		}
		r.dropPending(app)
		return nil, nil, res
	}
	return store, rels, nil
}

// unchangeable reports whether a rollback failed for a reason trying again
// cannot change: no restore path, tampered manifests, a hook Job that
// failed (berth's or the chart's own Helm rollback hook), a revision
// whose release is not recorded yet.
func unchangeable(err error) bool {
	return errors.Is(err, ErrNoRestorePath) || errors.Is(err, release.ErrDigestMismatch) || errors.Is(err, errHookFailed) ||
		errors.Is(err, helmrelease.ErrHookFailed) || errors.Is(err, errUnrecordedData)
}

// manualRollbackFailed keeps a `berth rollback` to target that failed after
// its data restore pending: the next passes retry it instead of letting
// the sync re-apply the release rolled away from, or the pinned one, over
// the restored data. A failure trying again cannot change is held instead:
// nothing is applied until a new commit, `berth sync`, `berth unpin` or a
// successful `berth rollback` ends it.
func (r *Reconciler) manualRollbackFailed(app *berthv1.Application, target int64, fromCommit, request string, err error) *ctrl.Result {
	hold := unchangeable(err)
	then := fmt.Sprintf("retried while Git points at %s", short(fromCommit))
	if hold {
		then = "not retried; nothing is applied"
	}
	msg := fmt.Sprintf("rollback to release %d failed after its data restore: %v; %s (a new commit, `berth sync`, `berth unpin` or a `berth rollback` that succeeds ends it; a failed restore Job must be deleted before the same rollback is asked again)", target, err, then)
	r.keepPending(app, pendingRollback{release: app.Status.CurrentRelease, commit: fromCommit, manual: true, target: target, request: request, hold: hold, msg: msg,
		syncToken: app.Annotations[berthv1.SyncRequestedAnnotation]})
	r.stall(app, "RollbackFailed", msg)
	if hold {
		return &ctrl.Result{RequeueAfter: r.interval(app)}
	}
	return &ctrl.Result{RequeueAfter: min(r.interval(app), 30*time.Second)}
}

// retryManualRollback retries the pending `berth rollback` of app (see
// manualRollbackFailed) while Git still points at the commit it rolled
// away from and the same release runs; a new commit or `berth sync` drops
// it. It reports whether it took the pass.
func (r *Reconciler) retryManualRollback(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, revision string) (ctrl.Result, bool) {
	p, ok := r.pendingManual(ctx, app)
	if !ok {
		return ctrl.Result{}, false
	}
	tok := app.Annotations[berthv1.SyncRequestedAnnotation]
	syncRequested := tok != "" && tok != app.Status.LastHandledSyncRequest && tok != p.syncToken
	if revision != p.commit || app.Status.CurrentRelease != p.release || syncRequested {
		r.dropPending(app)
		return ctrl.Result{}, false
	}
	_, rels, res := r.retryStart(ctx, app, p, fmt.Sprintf("the rollback to release %d", p.target))
	if res != nil {
		return *res, true
	}
	target := release.Numbered(rels, p.target)
	if target == nil {
		err := fmt.Errorf("%w: release %d is gone from the history", ErrNoRestorePath, p.target)
		return *r.manualRollbackFailed(app, p.target, p.commit, p.request, err), true
	}
	if err := r.rollbackTo(ctx, app, mgr, target, p.commit, "berth rollback (retried)", p.request); err != nil {
		return *r.manualRollbackFailed(app, p.target, p.commit, p.request, err), true
	}
	r.dropPending(app)
	r.Recorder.Eventf(app, corev1.EventTypeNormal, "RollbackRetried", "the rollback to release %d failed after its data restore and succeeded on retry", p.target)
	return ctrl.Result{RequeueAfter: 2 * time.Second}, true
}

// keepPending keeps rollback p pending for app. A manual one is also
// written to the Application's status (unfinishedRollback, with the pass's
// status write): an agent restarted before it ends carries on with it
// instead of re-applying the release it rolled away from over the restored
// data. An automatic one needs no copy: its failed release is the journal
// (see resume).
func (r *Reconciler) keepPending(app *berthv1.Application, p pendingRollback) {
	r.pendingRollback.Store(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, p)
	app.Status.UnfinishedRollback = nil
	if p.manual {
		app.Status.UnfinishedRollback = &berthv1.UnfinishedRollback{Target: p.target, FromRelease: p.release, FromCommit: p.commit,
			Request: p.request, SyncRequest: p.syncToken, Held: p.hold, Message: p.msg}
	}
}

// dropPending ends app's pending rollback, and its copy in status.
func (r *Reconciler) dropPending(app *berthv1.Application) {
	r.pendingRollback.Delete(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})
	app.Status.UnfinishedRollback = nil
}

// pendingManual returns app's pending `berth rollback`: this process's,
// or, when it has none, the one the status records (an agent that stopped
// before it ended).
func (r *Reconciler) pendingManual(ctx context.Context, app *berthv1.Application) (pendingRollback, bool) {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	if v, ok := r.pendingRollback.Load(key); ok {
		p := v.(pendingRollback)
		return p, p.manual
	}
	u := app.Status.UnfinishedRollback
	if u == nil {
		return pendingRollback{}, false
	}
	p := pendingRollback{release: u.FromRelease, commit: u.FromCommit, manual: true, target: u.Target, request: u.Request,
		syncToken: u.SyncRequest, hold: u.Held, msg: u.Message}
	r.pendingRollback.Store(key, p)
	ctrl.LoggerFrom(ctx).Info("carrying on with a rollback that failed after its data restore before this agent started",
		"target", u.Target, "fromRelease", u.FromRelease, "held", u.Held)
	return p, true
}
