package application

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/render"
)

// Data hook kinds (the values of berthv1.HookAnnotation).
const (
	hookPreSync = "pre-sync"
	hookRestore = "restore"
)

// Environment variables berth gives every container of a hook Job.
const (
	envSnapshot    = "BERTH_SNAPSHOT"
	envApplication = "BERTH_APPLICATION"
	envCommit      = "BERTH_COMMIT"
	envFromCommit  = "BERTH_FROM_COMMIT"
)

// ErrNoRestorePath refuses a rollback across a release whose pre-sync hook
// took a snapshot when that release declares no restore hook.
var ErrNoRestorePath = errors.New("no restore path")

// errHookFailed marks the error of a hook Job that failed: its name is its
// run, so trying again finds the same failed Job.
var errHookFailed = errors.New("failed")

// hooks are the data hook Jobs of a revision, by kind.
type hooks map[string]manifest.Object

// CheckHooks returns the error the agent would reject a revision of objs
// with over its data hooks (see splitHooks), for `berth render` and
// `berth check`, which run offline.
func CheckHooks(kind render.Kind, objs []manifest.Object) error {
	_, _, err := splitHooks(kind, objs)
	return err
}

// splitHooks separates the Jobs annotated berth.dev/hook from the objects
// a release applies. A hook on anything but a batch/v1 Job, an unknown hook
// kind, two hooks of one kind, or a hook in a Helm chart (charts have Helm's
// own hooks) reject the revision.
func splitHooks(kind render.Kind, objs []manifest.Object) ([]manifest.Object, hooks, error) {
	var workload []manifest.Object
	hs := hooks{}
	for _, o := range objs {
		h, ok := o.Object.GetAnnotations()[berthv1.HookAnnotation]
		if !ok {
			workload = append(workload, o)
			continue
		}
		where := o.ID()
		switch {
		case kind == render.Helm:
			return nil, nil, &manifest.Error{Source: o.Source, Err: fmt.Errorf("%s: %s hooks are not supported in Helm charts; use Helm's own hooks (helm.sh/hook)", where, berthv1.HookAnnotation)}
		case o.Object.GetAPIVersion() != "batch/v1" || o.Object.GetKind() != "Job":
			return nil, nil, &manifest.Error{Source: o.Source, Err: fmt.Errorf("%s: %s is only valid on a batch/v1 Job", where, berthv1.HookAnnotation)}
		case h != hookPreSync && h != hookRestore:
			return nil, nil, &manifest.Error{Source: o.Source, Err: fmt.Errorf("%s: %s must be %q or %q, not %q", where, berthv1.HookAnnotation, hookPreSync, hookRestore, h)}
		case hs[h].Object != nil:
			return nil, nil, &manifest.Error{Source: o.Source, Err: fmt.Errorf("%s: a second %s hook (the first is %s)", where, h, hs[h].ID())}
		}
		hs[h] = o
	}
	return workload, hs, nil
}

// hookJob is the Job to run for hook h: its own name with suffix (Jobs are
// immutable and a run is identified by its name), and berth's variables in
// every container. Its ttlSecondsAfterFinished is dropped: a finished Job
// is how the agent knows a run is done, and one the TTL controller deleted
// would be created and run again — a backup or a restore repeated, or, with
// a TTL of 0, never seen complete at all. The agent deletes hook Jobs when
// their release leaves the history.
func hookJob(h manifest.Object, suffix string, env map[string]string) manifest.Object {
	u := h.Object.DeepCopy()
	unstructured.RemoveNestedField(u.Object, "spec", "ttlSecondsAfterFinished")
	name := u.GetName() + "-" + suffix
	if len(name) > 63 {
		sum := sha256.Sum256([]byte(name))
		name = name[:54] + "-" + hex.EncodeToString(sum[:])[:8]
	}
	u.SetName(name)
	for _, path := range [][]string{{"spec", "template", "spec", "containers"}, {"spec", "template", "spec", "initContainers"}} {
		cs, found, _ := unstructured.NestedSlice(u.Object, path...)
		if !found {
			continue
		}
		for i := range cs {
			c, ok := cs[i].(map[string]any)
			if !ok {
				continue
			}
			vars, _ := c["env"].([]any)
			for _, k := range []string{envSnapshot, envApplication, envCommit, envFromCommit} {
				if v, ok := env[k]; ok {
					vars = append(vars, map[string]any{"name": k, "value": v})
				}
			}
			c["env"] = vars
			cs[i] = c
		}
		_ = unstructured.SetNestedSlice(u.Object, cs, path...)
	}
	return manifest.Object{Object: u, Source: h.Source}
}

// runHook applies job and reports whether it completed; a failed Job is an
// error. Completion is the Job's Complete condition, not kstatus: kstatus
// counts a Job that has started as Current, and a snapshot or restore must
// have finished before anything goes on.
func runHook(ctx context.Context, mgr *apply.Manager, job manifest.Object) (bool, error) {
	cs, err := mgr.Apply(ctx, []manifest.Object{job})
	if err != nil {
		return false, fmt.Errorf("starting hook Job %s: %w", job.Object.GetName(), err)
	}
	for _, e := range cs.Entries {
		if e.ID == job.ID() && e.Live != nil {
			return jobOutcome(e.Live)
		}
	}
	return false, fmt.Errorf("hook Job %s: the apply returned no state", job.Object.GetName())
}

// jobOutcome reads a Job's conditions: done once Complete, an error once
// Failed, otherwise still running.
func jobOutcome(u *unstructured.Unstructured) (bool, error) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["status"] != "True" {
			continue
		}
		switch m["type"] {
		case "Complete":
			return true, nil
		case "Failed":
			reason, _ := m["reason"].(string)
			msg, _ := m["message"].(string)
			return false, fmt.Errorf("hook Job %s %w: %s: %s", u.GetName(), errHookFailed, reason, msg)
		}
	}
	return false, nil
}

// preSync runs the revision's pre-sync hook, once per move from the
// current release to a commit and manifest digest, and returns the snapshot
// to bind to the release it precedes. It returns done=false while the Job
// runs.
//
// The Job's name (its run) and the snapshot ID name the release running
// when the hook starts: a retry of the same move finds the Job it started,
// but moving to the same commit again later — after a rollback and an
// unpin — is a new run, which backs up the data written meanwhile instead
// of reusing the first run's snapshot.
func (r *Reconciler) preSync(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, rev *revision, digest string) (*berthv1.DataSnapshot, bool, error) {
	h, ok := rev.hooks[hookPreSync]
	if !ok {
		return nil, true, nil
	}
	run := fmt.Sprintf("%s-%s-r%d", short(rev.sha), shortDigest(digest), app.Status.CurrentRelease)
	id := app.Name + "-" + run
	job := hookJob(h, run, map[string]string{
		envSnapshot: id, envApplication: app.Namespace + "/" + app.Name, envCommit: rev.sha, envFromCommit: app.Status.LastAppliedRevision,
	})
	r.hookRan.Store(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, struct{}{})
	done, err := runHook(ctx, mgr, job)
	if err != nil || !done {
		return nil, false, err
	}
	now := metav1.Now()
	return &berthv1.DataSnapshot{ID: id, Job: job.Object.GetName(), TakenAt: &now}, true, nil
}

// unrestoredAfter returns the releases after target whose pre-sync hook
// took a snapshot not restored yet, in the order of rels (the last is the
// oldest: rels are newest first).
func unrestoredAfter(rels []berthv1.Release, target *berthv1.Release) []*berthv1.Release {
	var out []*berthv1.Release
	for i := range rels {
		c := &rels[i]
		if c.Spec.Number > target.Spec.Number && c.Spec.Trigger != berthv1.TriggerRollback && c.Spec.Snapshot != nil && c.Status.Restored == nil {
			out = append(out, c)
		}
	}
	return out
}

// restoreAcross runs the restore hook a rollback to target needs: the
// oldest release after target whose pre-sync hook took a snapshot that was
// not restored yet is undone with its own restore hook and snapshot. It
// returns the releases whose snapshots the restore covered (to mark once the
// rollback is recorded) and the restore, or ErrNoRestorePath. With no such
// release, a revision applied after its own pre-sync hook but not recorded
// yet refuses the rollback (see unrecordedLive).
func (r *Reconciler) restoreAcross(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, rels []berthv1.Release, target *berthv1.Release) ([]*berthv1.Release, *berthv1.DataRestore, error) {
	covered := unrestoredAfter(rels, target)
	if len(covered) == 0 {
		return nil, nil, r.unrecordedLive(app, target)
	}
	oldest := covered[len(covered)-1]
	objs, err := r.releases().Manifests(ctx, oldest)
	if err != nil {
		return nil, nil, err
	}
	_, hs, err := splitHooks(render.Kind(oldest.Spec.Renderer), objs)
	if err != nil {
		return nil, nil, err
	}
	h, ok := hs[hookRestore]
	if !ok {
		return nil, nil, fmt.Errorf("%w: release %d ran pre-sync hook %s (snapshot %s) and declares no %s: %s hook, so its data cannot be taken back to release %d",
			ErrNoRestorePath, oldest.Spec.Number, oldest.Spec.Snapshot.Job, oldest.Spec.Snapshot.ID, berthv1.HookAnnotation, hookRestore, target.Spec.Number)
	}
	restore, err := r.runRestore(ctx, app, mgr, h, oldest.Spec.Snapshot.ID, target, fmt.Sprintf("taken before release %d", oldest.Spec.Number))
	if err != nil {
		return nil, nil, err
	}
	return covered, restore, nil
}

// errUnrecordedData refuses a rollback while a revision applied after its
// own pre-sync hook has no release record yet.
var errUnrecordedData = errors.New("a revision's data changes are live and not recorded")

// unrecordedLive refuses a rollback to target while a revision applied
// after its pre-sync hook could not be recorded yet (see unrecordedSync):
// its data changes are live and no release says so, so no restore would
// cross them. It is refused rather than restored: a restore recorded
// nowhere could run again, or be skipped, on a retry. Once the record
// lands, the rollback crosses that release and restores its snapshot as
// usual. The Application's status keeps it too (unrecordedSync), so a
// restarted agent refuses the same.
func (r *Reconciler) unrecordedLive(app *berthv1.Application, target *berthv1.Release) error {
	u, ok := r.unrecordedOf(app)
	if !ok {
		return nil
	}
	if u.snapshot == nil || u.from != app.Status.CurrentRelease {
		return nil
	}
	return fmt.Errorf("%w: revision %s was applied after pre-sync hook %s took snapshot %s, and its release could not be recorded yet (see the ReleaseNotRecorded event); "+
		"rolling back to release %d now would leave its data changes in place; once the record lands, request the rollback again: it restores %s with the revision's restore hook, or is refused if it has none",
		errUnrecordedData, short(u.sha), u.snapshot.Job, u.snapshot.ID, target.Spec.Number, u.snapshot.ID)
}

// runRestore runs restore hook h for snapshot snap on the way back to
// target and waits for it, up to the health timeout; what describes where
// the snapshot came from, for the event.
func (r *Reconciler) runRestore(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, h manifest.Object, snap string, target *berthv1.Release, what string) (*berthv1.DataRestore, error) {
	job := hookJob(h, "restore-"+shortDigest(snap+target.Spec.Digest), map[string]string{
		envSnapshot: snap, envApplication: app.Namespace + "/" + app.Name, envCommit: target.Spec.Commit, envFromCommit: app.Status.LastAppliedRevision,
	})
	deadline := time.Now().Add(r.healthTimeout(app))
	for {
		done, err := runHook(ctx, mgr, job)
		if errors.Is(err, errHookFailed) {
			// A restore that ran and failed may have changed the data
			// part-way: nothing may be re-applied over it (held).
			return nil, fmt.Errorf("restoring snapshot %s: %w: %w", snap, errFailedAfterRestore, err)
		}
		if err != nil {
			return nil, fmt.Errorf("restoring snapshot %s: %w", snap, err)
		}
		if done {
			break
		}
		// A restore that runs on after we stop waiting changes the data:
		// the rollback must be retried (errFailedAfterRestore).
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("restoring snapshot %s: %w: hook Job %s not complete after %s", snap, errFailedAfterRestore, job.Object.GetName(), r.healthTimeout(app))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", errFailedAfterRestore, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	now := metav1.Now()
	r.Recorder.Eventf(app, corev1.EventTypeNormal, "DataRestored", "restore hook Job %s restored snapshot %s (%s) on the way back to release %d",
		job.Object.GetName(), snap, what, target.Spec.Number)
	return &berthv1.DataRestore{Snapshot: snap, Job: job.Object.GetName(), At: &now}, nil
}

func shortDigest(d string) string {
	sum := sha256.Sum256([]byte(d))
	return hex.EncodeToString(sum[:])[:6]
}

// pruneHookJobs deletes, as app's service account, the hook Jobs of a
// release the history no longer holds: the pre-sync Job that took its
// snapshot and the restore Job that undid it. No kept
// release can restore across them (a restore undoes a release newer than
// its target, and the trim removes the oldest). What the Jobs stored (the
// backups themselves) is left alone. Jobs are looked for in the
// destination namespace; one annotated berth.dev/prune: "false" is kept. A
// failure is reported, never returned: the release it trimmed for is
// recorded.
func (r *Reconciler) pruneHookJobs(ctx context.Context, app *berthv1.Application, trimmed berthv1.Release) {
	var refs []apply.Ref
	if s := trimmed.Spec.Snapshot; s != nil && s.Job != "" {
		refs = append(refs, apply.Ref{GVK: jobGVK, Namespace: app.Spec.Namespace, Name: s.Job})
	}
	if rs := trimmed.Status.Restored; rs != nil && rs.Job != "" {
		refs = append(refs, apply.Ref{GVK: jobGVK, Namespace: app.Spec.Namespace, Name: rs.Job})
	}
	r.deleteHookJobs(ctx, app, refs, fmt.Sprintf("of release %d, trimmed from the history", trimmed.Spec.Number))
}

// pruneAbandonedHooks deletes, as app's service account, the finished
// pre-sync Jobs of app that no release holds: runs for a revision that was
// then rejected (its hook failed) or replaced by a newer commit before it
// was applied. It runs after a release is recorded: a run's name carries
// the release that ran when it started, so no later move can find such a
// Job again. keep is the Job of the release just recorded. Only
// Applications whose revision has a pre-sync hook, or for which this
// process ran one since their last record, pay the list.
func (r *Reconciler) pruneAbandonedHooks(ctx context.Context, app *berthv1.Application, rev *revision) {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	_, ran := r.hookRan.LoadAndDelete(key)
	if _, hooked := rev.hooks[hookPreSync]; !hooked && !ran {
		return
	}
	var jobs batchv1.JobList
	acct, err := r.accountOf(app)
	if err == nil {
		err = acct.reader.List(ctx, &jobs, client.InNamespace(app.Spec.Namespace),
			client.MatchingLabels{berthv1.OwnerNameLabel: LabelValue(app.Name), berthv1.OwnerNamespaceLabel: app.Namespace})
	}
	var rels []berthv1.Release
	if err == nil {
		rels, err = r.freshReleases().List(ctx, app.Namespace, app.Name)
	}
	if err != nil {
		r.Recorder.Eventf(app, corev1.EventTypeWarning, "HookJobsNotPruned", "abandoned pre-sync Jobs were not looked for: %v", err)
		return
	}
	held := map[string]bool{}
	if rev.snapshot != nil {
		held[rev.snapshot.Job] = true
	}
	for _, rel := range rels {
		if s := rel.Spec.Snapshot; s != nil {
			held[s.Job] = true
		}
	}
	var refs []apply.Ref
	for _, j := range jobs.Items {
		if j.Annotations[berthv1.HookAnnotation] != hookPreSync || held[j.Name] || !jobFinished(&j) {
			continue
		}
		refs = append(refs, apply.Ref{GVK: jobGVK, Namespace: j.Namespace, Name: j.Name})
	}
	r.deleteHookJobs(ctx, app, refs, "that no release holds (runs for a revision rejected or replaced before it was applied)")
}

// jobFinished reports whether j is Complete or Failed: a Job still running
// is left alone.
func jobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// deleteHookJobs deletes refs as app's service account, keeping those
// annotated berth.dev/prune: "false" or not owned by app, and reports it
// with an event (what says which Jobs). A failure is reported, never
// returned: the release it ran for is recorded.
func (r *Reconciler) deleteHookJobs(ctx context.Context, app *berthv1.Application, refs []apply.Ref, what string) {
	if len(refs) == 0 {
		return
	}
	mgr, err := r.manager(app)
	if err == nil {
		var cs apply.ChangeSet
		cs, err = mgr.Prune(ctx, refs, r.pruneOptions(app))
		var deleted []string
		for _, e := range cs.Entries {
			if e.Action == apply.Deleted {
				deleted = append(deleted, e.ID)
			}
		}
		if len(deleted) > 0 {
			r.Recorder.Eventf(app, corev1.EventTypeNormal, "HookJobsPruned", "deleted the hook Jobs %s: %s", what, strings.Join(deleted, ", "))
		}
	}
	if err != nil {
		r.Recorder.Eventf(app, corev1.EventTypeWarning, "HookJobsNotPruned", "hook Jobs %s were not deleted: %v", what, err)
	}
}

var jobGVK = schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}
