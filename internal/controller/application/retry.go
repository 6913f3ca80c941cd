package application

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
)

// retriesStatefulSets reports whether a failed release of app is retried
// instead of rolled back: rollback.statefulSets is Retry and app runs a
// StatefulSet.
func retriesStatefulSets(app *berthv1.Application) bool {
	if app.Spec.Rollback.StatefulSets != berthv1.StatefulSetRetry {
		return false
	}
	for _, o := range app.Status.Inventory {
		if o.Group == "apps" && o.Kind == "StatefulSet" {
			return true
		}
	}
	return false
}

// autoRollback reports whether a failed release of app is rolled back by
// the agent.
func autoRollback(app *berthv1.Application) bool {
	return (app.Spec.Rollback.Automatic == nil || *app.Spec.Rollback.Automatic) && !retriesStatefulSets(app)
}

// retry handles a failed release of an Application that retries its
// StatefulSets: the release is re-applied and gets another health timeout,
// up to rollback.retries times; then it is Failed and the Application
// Stalled, with no rollback.
func (r *Reconciler) retry(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, cur *berthv1.Release, msg string) (*ctrl.Result, error) {
	limit := app.Spec.Rollback.Retries
	if limit <= 0 {
		limit = 3
	}
	store := r.freshReleases()
	if cur.Status.Retries >= limit {
		why := fmt.Sprintf("%s; still failing after %d retries; not rolled back (rollback.statefulSets: Retry): push a fix or run `berth rollback %s`", msg, limit, app.Name)
		if err := store.SetOutcome(ctx, cur, berthv1.ReleaseFailed, why); err != nil {
			return nil, err
		}
		r.stall(app, "RetriesExhausted", fmt.Sprintf("release %d: %s", cur.Spec.Number, why))
		return &ctrl.Result{RequeueAfter: r.interval(app)}, nil
	}
	objs, err := r.workload(ctx, cur)
	if err != nil {
		return nil, err
	}
	// The whole release again, a Job removed past its TTL included: what
	// failed may have been what it did.
	if _, err := mgr.Apply(ctx, objs); err != nil {
		return nil, fmt.Errorf("retrying release %d: %w", cur.Spec.Number, err)
	}
	r.forgetTTLJobs(app)
	n := cur.Status.Retries + 1
	if err := store.UpdateStatus(ctx, cur, func(st *berthv1.ReleaseStatus) {
		st.Retries = n
		st.Reason = fmt.Sprintf("retry %d of %d after: %s", n, limit, msg)
	}); err != nil {
		return nil, err
	}
	// A fresh health timeout for the retry.
	now := metav1.Now()
	app.Status.LastAppliedAt = &now
	text := fmt.Sprintf("release %d failed (%s); it runs a StatefulSet and rollback.statefulSets is Retry: retry %d of %d instead of a rollback", cur.Spec.Number, msg, n, limit)
	r.Recorder.Event(app, corev1.EventTypeWarning, "RetryingRelease", text)
	setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, "RetryingRelease", text)
	setCondition(app, berthv1.ConditionReconciling, metav1.ConditionTrue, "RetryingRelease", text)
	return &ctrl.Result{RequeueAfter: 2 * time.Second}, nil
}
