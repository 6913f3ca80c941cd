package application

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
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
		objs, err := r.workload(ctx, newest)
		if err != nil {
			return nil, err
		}
		from := app.Status.CurrentRelease
		reason := fmt.Sprintf("rollback to release %d, resumed after an agent restart", newest.Spec.RollbackOf)
		r.pinTo(app, newest, objs, reason)
		for i := range rels {
			if rels[i].Spec.Number == from && rels[i].Status.Health == berthv1.ReleaseFailed {
				_ = store.SetOutcome(ctx, &rels[i], berthv1.ReleaseRolledBack, fmt.Sprintf("%s; rolled back to release %d", rels[i].Status.Reason, newest.Spec.RollbackOf))
			}
		}
		r.Recorder.Eventf(app, corev1.EventTypeNormal, "RollbackResumed", "release %d (a rollback to release %d) was recorded by an agent that stopped before pinning it; pinned now", newest.Spec.Number, newest.Spec.RollbackOf)
		return &ctrl.Result{RequeueAfter: 2 * time.Second}, nil

	case newest.Status.Health == berthv1.ReleaseFailed && newest.Spec.Trigger != berthv1.TriggerRollback &&
		app.Status.Pin == nil && autoRollback(app):
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

// pendingRollback is an automatic rollback of release (at commit) that
// failed.
type pendingRollback struct {
	release int64
	commit  string
}

// rollbackFailed stalls app after the automatic rollback of failed to
// target failed, and keeps the rollback pending: the next passes retry it
// (retryRollback) instead of re-applying the failed commit, whose data its
// restore hook may already have taken back.
func (r *Reconciler) rollbackFailed(app *berthv1.Application, failed, target *berthv1.Release, err error) *ctrl.Result {
	r.pendingRollback.Store(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, pendingRollback{release: failed.Spec.Number, commit: failed.Spec.Commit})
	r.stall(app, "RollbackFailed", fmt.Sprintf("automatic rollback of release %d to release %d failed: %v; retried while Git points at %s", failed.Spec.Number, target.Spec.Number, err, short(failed.Spec.Commit)))
	r.metrics.Failures.WithLabelValues(app.Namespace, app.Name, "RollbackFailed").Inc()
	return &ctrl.Result{RequeueAfter: min(r.interval(app), 30*time.Second)}
}

// retryRollback retries the pending automatic rollback of app while Git
// still points at the failed release's commit, the failed release is the
// current one, nothing pinned the Application and automatic rollback is
// still on. Otherwise (a new commit, a manual rollback) the rollback is
// dropped and the pass goes on. It reports whether it took the pass.
func (r *Reconciler) retryRollback(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, revision string) (ctrl.Result, bool) {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	v, ok := r.pendingRollback.Load(key)
	if !ok {
		return ctrl.Result{}, false
	}
	p := v.(pendingRollback)
	if revision != p.commit || app.Status.Pin != nil || app.Status.CurrentRelease != p.release || !autoRollback(app) {
		r.pendingRollback.Delete(key)
		return ctrl.Result{}, false
	}
	store := r.freshReleases()
	rels, err := store.List(ctx, app.Namespace, app.Name)
	if err != nil {
		r.stall(app, "RollbackFailed", fmt.Sprintf("retrying the rollback of release %d: %v", p.release, err))
		return ctrl.Result{RequeueAfter: min(r.interval(app), 30*time.Second)}, true
	}
	var failed *berthv1.Release
	for i := range rels {
		if rels[i].Spec.Number == p.release {
			failed = &rels[i]
		}
	}
	target := release.LastHealthy(rels, p.release)
	if failed == nil || target == nil || failed.Status.Health != berthv1.ReleaseFailed {
		r.pendingRollback.Delete(key)
		return ctrl.Result{}, false
	}
	reason := fmt.Sprintf("release %d (commit %s) failed: %s (rollback retried)", failed.Spec.Number, short(failed.Spec.Commit), failed.Status.Reason)
	if err := r.rollbackTo(ctx, app, mgr, target, failed.Spec.Commit, reason, ""); err != nil {
		return *r.rollbackFailed(app, failed, target, err), true
	}
	r.pendingRollback.Delete(key)
	_ = store.SetOutcome(ctx, failed, berthv1.ReleaseRolledBack, fmt.Sprintf("%s; rolled back to release %d", failed.Status.Reason, target.Spec.Number))
	r.Recorder.Eventf(app, corev1.EventTypeNormal, "RollbackRetried", "the rollback of release %d to release %d failed earlier and succeeded on retry", failed.Spec.Number, target.Spec.Number)
	return ctrl.Result{RequeueAfter: 2 * time.Second}, true
}
