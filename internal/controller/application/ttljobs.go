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
// heal, the periodic full pass, a pinned release held) does not re-create
// it, or the cluster's removal would run it again and again. Once gone it
// counts Current for health when this agent last saw it complete for the
// current release, or, when this agent never saw it (a restart), when that
// release was verified Healthy; else it is missing: a TTL of 0 removes a
// failed Job at once, and its failure must not pass for success.

// gonePastTTL is the health message of such a Job once removed.
const gonePastTTL = "finished and removed by its ttlSecondsAfterFinished"

// ttlJob reports whether o is a Job the cluster removes once finished.
func ttlJob(o manifest.Object) bool {
	gvk := o.Object.GroupVersionKind()
	if gvk.Group != "batch" || gvk.Kind != "Job" {
		return false
	}
	v, found, _ := unstructured.NestedFieldNoCopy(o.Object.Object, "spec", "ttlSecondsAfterFinished")
	return found && v != nil
}

// ttlRelease is what this agent knows of one release's Jobs (by release
// number): those it saw complete, and, once read from the release (its
// verdict Healthy), its TTL Jobs. Only the reconciles of its Application,
// one at a time, use it.
type ttlRelease struct {
	number int64
	// completed holds every Job seen for the release: true when last
	// seen complete, false when last seen running or failed.
	completed map[string]bool
	gone      map[string]string // ID -> health message; nil until read
}

// ttlOf returns app's ttlRelease for its current release.
func (r *Reconciler) ttlOf(app *berthv1.Application) *ttlRelease {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	if v, ok := r.ttlJobs.Load(key); ok && v.(*ttlRelease).number == app.Status.CurrentRelease {
		return v.(*ttlRelease)
	}
	t := &ttlRelease{number: app.Status.CurrentRelease, completed: map[string]bool{}}
	r.ttlJobs.Store(key, t)
	return t
}

// excuseTTLJobs records what rep saw of app's Jobs (complete or not), and
// counts Current, in rep, its TTL Jobs the cluster removed: those last
// seen complete, and those never seen (a restart) when the current release
// was verified Healthy. It reads that release's manifests only for a
// missing Job never seen, once per release.
func (r *Reconciler) excuseTTLJobs(ctx context.Context, app *berthv1.Application, rep apply.Report) apply.Report {
	if app.Status.CurrentRelease == 0 {
		return rep
	}
	var t *ttlRelease
	var missing []string
	for _, o := range rep.Objects {
		if !strings.HasPrefix(o.ID, "batch/Job ") {
			continue
		}
		if t == nil {
			t = r.ttlOf(app)
		}
		if o.Status == status.NotFoundStatus {
			missing = append(missing, o.ID)
			continue
		}
		t.completed[o.ID] = o.Completed // seen: complete, or not (running, failed, run again)
	}
	if len(missing) == 0 {
		return rep
	}
	gone := map[string]string{}
	unseen := false
	for _, id := range missing {
		was, seen := t.completed[id]
		if was {
			gone[id] = gonePastTTL
		}
		unseen = unseen || !seen
	}
	if unseen {
		if t.gone == nil {
			rel, err := r.freshReleases().Get(ctx, app.Namespace, app.Name, t.number)
			if err != nil || rel.Status.Health != berthv1.ReleaseHealthy {
				return rep.Excuse(gone) // no verdict yet: missing is missing
			}
			objs, err := r.workload(ctx, rel)
			if err != nil {
				return rep.Excuse(gone)
			}
			t.gone = map[string]string{}
			for _, o := range objs {
				if ttlJob(o) {
					t.gone[o.ID()] = gonePastTTL
				}
			}
		}
		for id, why := range t.gone {
			if _, seen := t.completed[id]; !seen {
				gone[id] = why // never seen: the verdict vouches for it
			}
		}
	}
	return rep.Excuse(gone)
}

// forgetTTLJobs drops what this agent saw of app's Jobs: its current
// release is applied again (a retry), and runs them again.
func (r *Reconciler) forgetTTLJobs(app *berthv1.Application) {
	r.ttlJobs.Delete(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})
}

// withoutRemovedTTLJobs returns objs without the TTL Jobs the cluster has
// removed: for the same revision re-applied, which must not run them again.
// When they cannot be read, without every TTL Job: one that exists misses
// one heal, where one removed would run again.
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
	removed := map[string]bool{}
	for i, ref := range refs {
		if err != nil || rep.Objects[i].Status == status.NotFoundStatus {
			removed[ref.ID()] = true
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
