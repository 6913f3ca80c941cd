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
			r.stall(app, "RollbackFailed", fmt.Sprintf("resuming the rollback to release %d failed: %v", target.Spec.Number, err))
			return &ctrl.Result{RequeueAfter: r.interval(app)}, nil
		}
		_ = store.SetOutcome(ctx, newest, berthv1.ReleaseRolledBack, fmt.Sprintf("%s; rolled back to release %d", newest.Status.Reason, target.Spec.Number))
		r.Recorder.Eventf(app, corev1.EventTypeNormal, "RollbackResumed", "release %d had failed and its rollback was interrupted; rolled back to release %d now", newest.Spec.Number, target.Spec.Number)
		return &ctrl.Result{RequeueAfter: 2 * time.Second}, nil
	}
	return nil, nil
}
