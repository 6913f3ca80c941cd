package application

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/manifest"
)

// A Job with spec.ttlSecondsAfterFinished is removed by the cluster once
// it finished. For berth it runs once per revision: a new revision applies
// it (again, if it is gone), but the same revision re-applied (a drift
// heal, the periodic full pass, a pinned release held) does not re-create
// it, or the cluster's removal would run it again and again; and once
// gone it counts as Current for health, not as a missing object that
// fails the release.

// gonePastTTL is the health message of such a Job once removed.
const gonePastTTL = "finished and removed by its ttlSecondsAfterFinished"

// ttlJob reports whether o is a Job the cluster removes once finished.
func ttlJob(o manifest.Object) bool {
	gvk := o.Object.GroupVersionKind()
	if gvk.Group != "batch" || gvk.Kind != "Job" {
		return false
	}
	_, found, _ := unstructured.NestedFieldNoCopy(o.Object.Object, "spec", "ttlSecondsAfterFinished")
	return found
}

// noteTTLJobs records which of app's objects are such Jobs, for its health
// checks.
func (r *Reconciler) noteTTLJobs(app types.NamespacedName, objs []manifest.Object) {
	gone := map[string]string{}
	for _, o := range objs {
		if ttlJob(o) {
			gone[o.ID()] = gonePastTTL
		}
	}
	if len(gone) == 0 {
		r.ttlJobs.Delete(app)
		return
	}
	r.ttlJobs.Store(app, gone)
}

// excuseTTLJobs counts app's removed TTL Jobs Current in rep.
func (r *Reconciler) excuseTTLJobs(app types.NamespacedName, rep apply.Report) apply.Report {
	if v, ok := r.ttlJobs.Load(app); ok {
		return rep.Excuse(v.(map[string]string))
	}
	return rep
}

// withoutRemovedTTLJobs returns objs without the TTL Jobs the cluster has
// removed: for the same revision re-applied, which must not run them again.
func withoutRemovedTTLJobs(ctx context.Context, mgr *apply.Manager, objs []manifest.Object) ([]manifest.Object, error) {
	var refs []apply.Ref
	for _, o := range objs {
		if ttlJob(o) {
			refs = append(refs, apply.Ref{GVK: o.Object.GroupVersionKind(), Namespace: o.Object.GetNamespace(), Name: o.Object.GetName()})
		}
	}
	if len(refs) == 0 {
		return objs, nil
	}
	rep, err := mgr.Health(ctx, refs)
	if err != nil {
		return nil, err
	}
	removed := map[string]bool{}
	for _, oh := range rep.Objects {
		if oh.Status == status.NotFoundStatus {
			removed[oh.ID] = true
		}
	}
	if len(removed) == 0 {
		return objs, nil
	}
	out := make([]manifest.Object, 0, len(objs))
	for _, o := range objs {
		if !removed[o.ID()] {
			out = append(out, o)
		}
	}
	return out, nil
}
