package application

import (
	"context"
	"errors"
	"fmt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/failpoint"
	"github.com/berth-dev/berth/internal/helmrelease"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/release"
	"github.com/berth-dev/berth/internal/render"
)

// releases is the release store of the sync path: it reads the cache. The
// Application's status, which numbers the releases, is read fresh (see
// read), and the current release is read from the API server when the
// cache does not have it yet (see releaseOutcome).
func (r *Reconciler) releases() *release.Store {
	return &release.Store{Client: r.Client}
}

// freshReleases is the release store of verdicts, rollbacks, retries and
// requests: it reads the API server, since a cached history can miss the
// release recorded a moment ago (a rollback would then skip its data
// restore, or number itself after the wrong release). These paths run
// once per release, not once per sync.
func (r *Reconciler) freshReleases() *release.Store {
	if r.APIReader == nil {
		return r.releases()
	}
	return &release.Store{Client: r.Client, Reader: r.APIReader}
}

// recordRelease records a sync that reached the cluster.
func (r *Reconciler) recordRelease(ctx context.Context, app *berthv1.Application, rev *revision, pins []berthv1.ImagePin, trigger string) error {
	in := release.Input{Commit: rev.sha, Trigger: trigger, Renderer: string(rev.kind), Objects: rev.all(), Images: pins, Snapshot: rev.snapshot,
		Encoded: rev.encoded, Digest: rev.digest}
	if rev.kind == render.Helm && rev.helm != nil {
		if latest, err := helmrelease.Latest(r.impersonatedConfig(app), app.Spec.Namespace, rev.helm.ReleaseName); err == nil && latest != nil {
			in.HelmRelease, in.HelmVersion = latest.Name, latest.Version
		}
	}
	// A reconcile that re-applies what the newest release already holds is
	// not a new release (see release.Store.Record).
	store := r.releases()
	store.Trimmed = func(old berthv1.Release) { r.pruneHookJobs(ctx, app, old) }
	rel, created, err := store.Record(ctx, app, in)
	if err != nil && rel == nil {
		return err
	}
	app.Status.CurrentRelease = rel.Spec.Number
	if err != nil {
		// Recorded; only the history could not be trimmed.
		r.Recorder.Eventf(app, corev1.EventTypeWarning, "HistoryNotTrimmed", "release %d recorded; older releases not trimmed: %v", rel.Spec.Number, err)
	}
	if created {
		r.pruneAbandonedHooks(ctx, app, rev)
	}
	return nil
}

// releaseOutcome updates the current release from the health verdict: a
// Healthy release gets its way back rehearsed and supersedes the previous
// one; a Failed one is rolled back when the Application allows it. It
// returns a non-nil result when it took over the reconcile's outcome.
func (r *Reconciler) releaseOutcome(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, health apply.Health, msg string) (*ctrl.Result, error) {
	if app.Status.CurrentRelease == 0 {
		return nil, nil
	}
	store := r.releases()
	// One read on every health check; the history only once a verdict is in.
	cur, err := store.Get(ctx, app.Namespace, app.Name, app.Status.CurrentRelease)
	if apierrors.IsNotFound(err) && r.APIReader != nil {
		// Created a moment ago, not in the cache yet: its verdict must
		// not wait for the next poll.
		cur, err = r.freshReleases().Get(ctx, app.Namespace, app.Name, app.Status.CurrentRelease)
	}
	// An empty health is Pending too: a Release created while an older CRD
	// without the status default was installed.
	if apierrors.IsNotFound(err) || (err == nil && cur.Status.Health != berthv1.ReleasePending && cur.Status.Health != "") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if health != apply.Healthy && health != apply.Degraded {
		return nil, nil
	}
	// The first release has no history to read.
	var rels []berthv1.Release
	if cur.Spec.Number > 1 {
		if rels, err = r.freshReleases().List(ctx, app.Namespace, app.Name); err != nil {
			return nil, err
		}
	}
	switch health {
	case apply.Healthy:
		prev := release.LastHealthy(rels, cur.Spec.Number)
		wb := berthv1.WayBack{Status: "Unknown", Reason: "no earlier healthy release"}
		if prev != nil {
			wb = r.rehearse(ctx, mgr, prev)
		}
		now := metav1.Now()
		if err := store.UpdateStatus(ctx, cur, func(st *berthv1.ReleaseStatus) {
			st.WayBack = &wb
			st.Health, st.Reason, st.FinishedAt = berthv1.ReleaseHealthy, msg, &now
		}); err != nil {
			return nil, err
		}
		for i := range rels {
			if rels[i].Spec.Number < cur.Spec.Number && rels[i].Status.Health == berthv1.ReleaseHealthy {
				_ = store.SetOutcome(ctx, &rels[i], berthv1.ReleaseSuperseded, fmt.Sprintf("superseded by release %d", cur.Spec.Number))
			}
		}
		return nil, nil
	case apply.Degraded:
		if cur.Spec.Trigger != berthv1.TriggerRollback && retriesStatefulSets(app) {
			return r.retry(ctx, app, mgr, cur, msg)
		}
		if err := store.SetOutcome(ctx, cur, berthv1.ReleaseFailed, msg); err != nil {
			return nil, err
		}
		if cur.Spec.Trigger == berthv1.TriggerRollback {
			// No loop: a rollback that fails stops here.
			r.stall(app, "RollbackFailed", fmt.Sprintf("rollback release %d (to release %d) is unhealthy too: %s; not rolling back again", cur.Spec.Number, cur.Spec.RollbackOf, msg))
			return &ctrl.Result{RequeueAfter: r.interval(app)}, nil
		}
		if !autoRollback(app) {
			return nil, nil
		}
		target := release.LastHealthy(rels, cur.Spec.Number)
		if target == nil {
			r.Recorder.Eventf(app, corev1.EventTypeWarning, "NoRollbackTarget", "release %d failed and no earlier release was healthy", cur.Spec.Number)
			return nil, nil
		}
		reason := fmt.Sprintf("release %d (commit %s) failed: %s", cur.Spec.Number, short(cur.Spec.Commit), msg)
		if err := r.rollbackTo(ctx, app, mgr, target, cur.Spec.Commit, reason, ""); err != nil {
			return r.rollbackFailed(app, cur, target, err), nil
		}
		_ = store.SetOutcome(ctx, cur, berthv1.ReleaseRolledBack, fmt.Sprintf("%s; rolled back to release %d", msg, target.Spec.Number))
		return &ctrl.Result{RequeueAfter: 2 * time.Second}, nil
	}
	return nil, nil
}

// rehearse checks the way back to prev: a server-side dry-run of its
// manifests against the cluster as it is now.
func (r *Reconciler) rehearse(ctx context.Context, mgr *apply.Manager, prev *berthv1.Release) berthv1.WayBack {
	objs, err := r.workload(ctx, prev)
	if err != nil {
		return berthv1.WayBack{Status: "Blocked", ToRelease: prev.Spec.Number, Reason: err.Error()}
	}
	if _, err := mgr.Validate(ctx, objs); err != nil {
		return berthv1.WayBack{Status: "Blocked", ToRelease: prev.Spec.Number, Reason: err.Error()}
	}
	return berthv1.WayBack{Status: "Verified", ToRelease: prev.Spec.Number}
}

// rollbackTo re-applies target's recorded manifests (Helm charts through a
// Helm rollback), prunes what the current release added, records the
// rollback as a new release and pins the Application to it while Git still
// points at fromCommit. A release crossed on the way whose pre-sync hook
// took a snapshot is restored first with its restore hook, or the rollback
// is refused (ErrNoRestorePath). request is the `berth rollback` token
// being answered, "" for an automatic rollback. A failure once a restore
// ran is errFailedAfterRestore.
func (r *Reconciler) rollbackTo(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, target *berthv1.Release, fromCommit, reason, request string) error {
	all, err := r.freshReleases().Manifests(ctx, target)
	if err != nil {
		return err // a digest mismatch refuses the rollback
	}
	objs, _, err := splitHooks(render.Kind(target.Spec.Renderer), all)
	if err != nil {
		return err
	}
	rels, err := r.freshReleases().List(ctx, app.Namespace, app.Name)
	if err != nil {
		return err
	}
	if target.Spec.Renderer == string(render.Helm) || len(unrestoredAfter(rels, target)) > 0 {
		// A restore or a Helm rollback runs before the apply below, and
		// neither is undone if the apply is then refused: refuse first.
		if _, err := mgr.Validate(ctx, objs); err != nil {
			return err
		}
	}
	covered, restore, err := r.restoreAcross(ctx, app, mgr, rels, target)
	if err != nil {
		return err
	}
	if restore != nil {
		// The restore undid a release at or before the current one, and
		// with it a revision applied after it but not recorded yet.
		r.dropUnrecorded(app)
	}
	// The restore is recorded on the releases it covered before anything
	// else can fail: a rollback that fails later (and is retried, or
	// abandoned for a new commit) must not restore the same snapshot again
	// over data written since. The rollback release that ran the restore
	// is named once it is recorded (below).
	for _, c := range covered {
		rs := *restore
		if err := r.freshReleases().UpdateStatus(ctx, c, func(st *berthv1.ReleaseStatus) { st.Restored = &rs }); err != nil {
			return failedAfter(restore, err)
		}
	}
	helmVersion := 0
	held := app.Status.Inventory
	if target.Spec.Renderer == string(render.Helm) && target.Spec.HelmRelease != "" && target.Spec.HelmVersion > 0 {
		// Helm's rollback deletes nothing (helmrelease.Rollback): the
		// prune below does, and must know what the release holds now.
		cfg := r.impersonatedConfig(app)
		latest, err := helmrelease.Latest(cfg, app.Spec.Namespace, target.Spec.HelmRelease)
		if err != nil {
			return failedAfter(restore, err)
		}
		if latest != nil {
			held = union(held, releaseObjects(latest.Manifest))
		}
		// A later rollback to this rollback release goes through Helm too.
		v, err := helmrelease.Rollback(ctx, cfg, app.Spec.Namespace, target.Spec.HelmRelease, target.Spec.HelmVersion, helmHistory(app))
		if err != nil {
			return failedAfter(restore, err)
		}
		helmVersion = v
	}
	if cs, err := mgr.Apply(ctx, objs); err != nil {
		keepWritten(app, cs)
		return failedAfter(restore, err)
	}
	next := inventoryOf(objs)
	if gone := subtract(held, next); PruneOn(app) && len(gone) > 0 {
		if _, err := mgr.Prune(ctx, refsOf(gone), r.pruneOptions(app)); err != nil {
			// The target's objects are written: recorded with what was
			// to go, they are pruned once Git drops them, whatever comes
			// of this rollback.
			app.Status.Inventory = union(next, gone)
			return failedAfter(restore, err)
		}
	}
	failpoint.Inject(failpoint.RollbackApplied)
	in := release.Input{Commit: target.Spec.Commit, Trigger: berthv1.TriggerRollback, Renderer: target.Spec.Renderer,
		Objects: all, Images: target.Spec.Images, RollbackOf: target.Spec.Number,
		HelmRelease: target.Spec.HelmRelease, HelmVersion: helmVersion, RolledBackFrom: fromCommit, Request: request}
	store := r.freshReleases()
	store.Trimmed = func(old berthv1.Release) { r.pruneHookJobs(ctx, app, old) }
	rel, err := store.Create(ctx, app, in)
	if err != nil && rel == nil {
		return failedAfter(restore, err)
	}
	// Recorded: from here on nothing fails the rollback (a retry would
	// record it again).
	if err != nil {
		r.Recorder.Eventf(app, corev1.EventTypeWarning, "HistoryNotTrimmed", "release %d recorded; older releases not trimmed: %v", rel.Spec.Number, err)
	}
	// Name this rollback on the restores it ran, including one an earlier,
	// failed attempt ran (the retry found it done). A restore whose
	// rollback was abandoned is named after the next rollback crossing it.
	for i := range rels {
		c := &rels[i]
		if rs := c.Status.Restored; c.Spec.Number > target.Spec.Number && rs != nil && rs.ForRollback == 0 {
			named := *rs
			named.ForRollback = rel.Spec.Number
			if err := r.freshReleases().UpdateStatus(ctx, c, func(st *berthv1.ReleaseStatus) { st.Restored = &named }); err != nil {
				ctrl.LoggerFrom(ctx).Info("naming the rollback on a restored release", "release", c.Name, "error", err.Error())
			}
		}
	}
	failpoint.Inject(failpoint.RollbackRecorded)
	r.pinTo(app, rel, objs, reason)
	r.metrics.Rollbacks.WithLabelValues(app.Namespace, app.Name).Inc()
	r.Recorder.Eventf(app, corev1.EventTypeWarning, "RolledBack", "rolled back to release %d (commit %s) as release %d: %s; pinned while Git is at %s",
		target.Spec.Number, short(target.Spec.Commit), rel.Spec.Number, reason, short(fromCommit))
	return nil
}

// errFailedAfterRestore marks a rollback that failed once its restore hook
// had run: the data is back at the target's, the code is not, and the
// rollback must be retried, not left for the next sync to re-apply the
// release rolled away from (see retryRollback).
var errFailedAfterRestore = errors.New("failed after its data restore")

// failedAfter marks err as errFailedAfterRestore when restore ran.
func failedAfter(restore *berthv1.DataRestore, err error) error {
	if restore == nil || err == nil {
		return err
	}
	return fmt.Errorf("%w: %w", errFailedAfterRestore, err)
}

// pinTo points app's status at rollback release rel (whose workload is
// objs) and pins it while Git stays at the commit rolled away from.
func (r *Reconciler) pinTo(app *berthv1.Application, rel *berthv1.Release, objs []manifest.Object, reason string) {
	now := metav1.Now()
	app.Status.Inventory = inventoryOf(objs)
	app.Status.CurrentRelease = rel.Spec.Number
	app.Status.LastAppliedRevision = rel.Spec.Commit
	app.Status.LastAppliedDigest = rel.Spec.Digest
	app.Status.LastAppliedAt = &now
	app.Status.Images = rel.Spec.Images
	app.Status.Health = string(apply.Progressing)
	app.Status.Pin = &berthv1.Pin{Release: rel.Spec.Number, FromCommit: rel.Spec.RolledBackFrom, Reason: reason, Since: now}
	if rel.Spec.Request != "" {
		app.Status.LastHandledRollback = rel.Spec.Request
	}
	r.lastFull.Store(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, time.Now())
	meta.RemoveStatusCondition(&app.Status.Conditions, berthv1.ConditionStalled)
}

// workload returns the objects release rel applies: its recorded manifests
// without its data hooks.
func (r *Reconciler) workload(ctx context.Context, rel *berthv1.Release) ([]manifest.Object, error) {
	all, err := r.freshReleases().Manifests(ctx, rel)
	if err != nil {
		return nil, err
	}
	objs, _, err := splitHooks(render.Kind(rel.Spec.Renderer), all)
	return objs, err
}

// holdPin keeps a pinned release running while Git still points at the
// commit rolled away from: drift is healed with the release's manifests,
// or, in drift mode detect or off or with automated sync off, reported as
// a sync's would be.
func (r *Reconciler) holdPin(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, drift, fullDue bool) (ctrl.Result, error) {
	if drift || fullDue {
		rel, err := r.freshReleases().Get(ctx, app.Namespace, app.Name, app.Status.Pin.Release)
		if err != nil {
			return ctrl.Result{}, err
		}
		objs, err := r.workload(ctx, rel)
		if err != nil {
			r.stall(app, "PinnedReleaseUnreadable", err.Error())
			return ctrl.Result{RequeueAfter: r.interval(app)}, nil
		}
		automated := app.Spec.SyncPolicy.Automated == nil || *app.Spec.SyncPolicy.Automated
		if mode := app.Spec.SyncPolicy.Drift; !automated || (mode != "" && mode != berthv1.DriftHeal) {
			key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
			r.lastFull.Store(key, time.Now())
			res, err := r.observe(ctx, app, mgr, &revision{sha: rel.Spec.Commit, objects: objs}, false)
			if _, retrying := r.transientTries.Load(key); retrying || err != nil {
				r.lastFull.Delete(key) // the retry checks drift again
			}
			if c := meta.FindStatusCondition(app.Status.Conditions, berthv1.ConditionStalled); c != nil && c.Reason == "PinnedReleaseUnreadable" {
				meta.RemoveStatusCondition(&app.Status.Conditions, berthv1.ConditionStalled)
			}
			app.Status.Sync = "Pinned"
			return res, err
		}
		objs = withoutRemovedTTLJobs(ctx, mgr, objs)
		if cs, err := mgr.Apply(ctx, objs); err != nil {
			keepWritten(app, cs)
			return ctrl.Result{}, fmt.Errorf("re-applying pinned release %d: %w", rel.Spec.Number, err)
		}
		r.lastFull.Store(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, time.Now())
		meta.RemoveStatusCondition(&app.Status.Conditions, berthv1.ConditionDrifted)
		// The pinned release is re-applied whole: a stall over reading
		// or writing it is over (not one over a failed rollback or
		// retries run out, which a person ends).
		if c := meta.FindStatusCondition(app.Status.Conditions, berthv1.ConditionStalled); c != nil &&
			(c.Reason == "PinnedReleaseUnreadable" || disprovedByObserve[c.Reason]) {
			meta.RemoveStatusCondition(&app.Status.Conditions, berthv1.ConditionStalled)
		}
	}
	// Watched as a sync's objects are, after a rollback and after a
	// restart (the watcher starts empty).
	r.watcher.ensure(ctx, app, app.Status.Inventory)
	app.Status.Sync = "Pinned"
	return r.health(ctx, app, mgr, nil)
}

// handleRequests acts on `berth rollback` and `berth unpin`. It returns a
// non-nil result when a rollback was performed.
func (r *Reconciler) handleRequests(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, gitRevision string) (*ctrl.Result, error) {
	if tok := app.Annotations[berthv1.UnpinAnnotation]; tok != "" && tok != app.Status.LastHandledUnpin {
		app.Status.LastHandledUnpin = tok
		// Follow Git again: a rollback being retried or held ends.
		r.dropPending(app)
		if app.Status.Pin != nil {
			r.Recorder.Eventf(app, corev1.EventTypeNormal, "Unpinned", "following Git again (was pinned to release %d)", app.Status.Pin.Release)
			app.Status.Pin = nil
		}
	}
	tok := app.Annotations[berthv1.RollbackAnnotation]
	if tok == "" || tok == app.Status.LastHandledRollback {
		return nil, nil
	}
	numStr, _, _ := strings.Cut(tok, "@")
	n, err := strconv.ParseInt(numStr, 10, 64)
	if err != nil {
		app.Status.LastHandledRollback = tok
		msg := fmt.Sprintf("invalid rollback request %q", tok)
		r.Recorder.Event(app, corev1.EventTypeWarning, "RollbackRefused", msg)
		setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, "RollbackRefused", msg)
		return nil, nil
	}
	target, err := r.freshReleases().Get(ctx, app.Namespace, app.Name, n)
	if err != nil && !apierrors.IsNotFound(err) {
		// Not handled: asked again at the retry.
		return nil, fmt.Errorf("reading release %d for a rollback: %w", n, err)
	}
	app.Status.LastHandledRollback = tok
	if err != nil {
		msg := fmt.Sprintf("rollback to release %d refused: no such release (trimmed from the history?)", n)
		r.Recorder.Event(app, corev1.EventTypeWarning, "RollbackRefused", msg)
		setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, "RollbackRefused", msg)
		return &ctrl.Result{RequeueAfter: r.interval(app)}, nil
	}
	if err := r.rollbackTo(ctx, app, mgr, target, gitRevision, "berth rollback", tok); err != nil {
		if errors.Is(err, errFailedAfterRestore) {
			r.Recorder.Eventf(app, corev1.EventTypeWarning, "RollbackFailed", "rollback to release %d failed after its data restore: %v; retrying", n, err)
			return r.manualRollbackFailed(app, n, gitRevision, tok, err), nil
		}
		msg := fmt.Sprintf("rollback to release %d refused: %v", n, err)
		if errors.Is(err, release.ErrDigestMismatch) {
			msg = fmt.Sprintf("rollback to release %d refused: its manifests no longer match their recorded digest", n)
		}
		r.Recorder.Event(app, corev1.EventTypeWarning, "RollbackRefused", msg)
		setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, "RollbackRefused", msg)
		return &ctrl.Result{RequeueAfter: r.interval(app)}, nil
	}
	// A rollback that succeeds ends one being retried or held.
	r.dropPending(app)
	return &ctrl.Result{RequeueAfter: 2 * time.Second}, nil
}

// helmHistory is how many revisions Helm keeps of app's chart release:
// twice berth's history limit (at least Helm's default), so that each
// release berth keeps still finds the Helm revision it rolls back to, with
// room for a failed attempt between two releases.
func helmHistory(app *berthv1.Application) int {
	return max(2*release.HistoryLimit(app), helmrelease.DefaultMaxHistory)
}
