package application

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/manifest"
)

// A Job with spec.ttlSecondsAfterFinished is removed by the cluster once
// it finished. For berth it runs once per revision: a new revision applies
// it (again, if it is gone), but the same revision re-applied (a drift
// heal, the periodic full pass, a pinned release held, a StatefulSet
// release retried) does not re-create it, or the cluster's removal would
// run it again and again. Once gone it is missing for health until the
// release's verdict is Healthy (a TTL of 0 removes a failed Job at once:
// its failure must not pass for success), and Current after.

// gonePastTTL is the health message of such a Job once removed.
const gonePastTTL = "finished and removed by its ttlSecondsAfterFinished after its release was verified Healthy"

// ttlJob reports whether o is a Job the cluster removes once finished.
func ttlJob(o manifest.Object) bool {
	gvk := o.Object.GroupVersionKind()
	if gvk.Group != "batch" || gvk.Kind != "Job" {
		return false
	}
	v, found, _ := unstructured.NestedFieldNoCopy(o.Object.Object, "spec", "ttlSecondsAfterFinished")
	return found && v != nil
}

// ttlRelease is the TTL Jobs (IDs) of one release, by number, once its
// verdict is Healthy.
type ttlRelease struct {
	number int64
	gone   map[string]string // ID -> health message
}

// excuseTTLJobs counts Current, in rep, app's TTL Jobs the cluster removed
// after the current release was verified Healthy. It reads that release's
// manifests only when a Job is missing, once per release.
func (r *Reconciler) excuseTTLJobs(ctx context.Context, app *berthv1.Application, rep apply.Report) apply.Report {
	missing := false
	for _, o := range rep.Objects {
		if o.Status == status.NotFoundStatus && strings.HasPrefix(o.ID, "batch/Job ") {
			missing = true
			break
		}
	}
	if !missing || app.Status.CurrentRelease == 0 {
		return rep
	}
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	n := app.Status.CurrentRelease
	if v, ok := r.ttlJobs.Load(key); ok && v.(ttlRelease).number == n {
		return rep.Excuse(v.(ttlRelease).gone)
	}
	rel, err := r.freshReleases().Get(ctx, app.Namespace, app.Name, n)
	if err != nil || rel.Status.Health != berthv1.ReleaseHealthy {
		return rep // no verdict yet: missing is missing
	}
	objs, err := r.workload(ctx, rel)
	if err != nil {
		return rep
	}
	gone := map[string]string{}
	for _, o := range objs {
		if ttlJob(o) {
			gone[o.ID()] = gonePastTTL
		}
	}
	r.ttlJobs.Store(key, ttlRelease{number: n, gone: gone})
	return rep.Excuse(gone)
}

// withoutRemovedTTLJobs returns objs without the TTL Jobs the cluster has
// removed: for the same revision re-applied, which must not run them again.
// When they cannot be read, objs are returned whole (the apply or the
// drift check that follows meets the same error, and says it).
func withoutRemovedTTLJobs(ctx context.Context, mgr *apply.Manager, objs []manifest.Object) []manifest.Object {
	var refs []apply.Ref
	for _, o := range objs {
		if ttlJob(o) {
			refs = append(refs, apply.Ref{GVK: o.Object.GroupVersionKind(), Namespace: o.Object.GetNamespace(), Name: o.Object.GetName()})
		}
	}
	if len(refs) == 0 {
		return objs
	}
	rep, err := mgr.Health(ctx, refs)
	if err != nil {
		return objs
	}
	removed := map[string]bool{}
	for _, oh := range rep.Objects {
		if oh.Status == status.NotFoundStatus {
			removed[oh.ID] = true
		}
	}
	if len(removed) == 0 {
		return objs
	}
	out := make([]manifest.Object, 0, len(objs))
	for _, o := range objs {
		if !removed[o.ID()] {
			out = append(out, o)
		}
	}
	return out
}
