package application

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
)

// healthPoll is how often a progressing Application is checked when no
// status change of its objects arrives.
const healthPoll = 5 * time.Second

// healthOnly reports whether this reconcile of app needs to do nothing but
// check health: it is waiting for its objects, and nothing else can have
// changed — no drift, push, spec change or request, and the Git poll is not
// due. It consumes the health-due mark.
func (r *Reconciler) healthOnly(app *berthv1.Application) bool {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	if _, due := r.healthDue.LoadAndDelete(key); !due {
		return false
	}
	if _, drift := r.suspectDrift.Load(key); drift {
		return false
	}
	if _, pushed := r.webhookTriggered.Load(key); pushed {
		return false
	}
	fetched, ok := r.lastFetch.Load(key)
	if !ok || time.Since(fetched.(time.Time)) >= r.interval(app) {
		return false
	}
	a := app.Annotations
	return app.Generation == app.Status.ObservedGeneration &&
		a[berthv1.RollbackAnnotation] == app.Status.LastHandledRollback &&
		a[berthv1.UnpinAnnotation] == app.Status.LastHandledUnpin &&
		a[berthv1.SyncRequestedAnnotation] == app.Status.LastHandledSyncRequest &&
		!meta.IsStatusConditionTrue(app.Status.Conditions, berthv1.ConditionStalled)
}

// awaitingHealth reports whether namespace/name waits for its objects.
func (r *Reconciler) awaitingHealth(namespace, name string) bool {
	_, ok := r.healthDue.Load(types.NamespacedName{Namespace: namespace, Name: name})
	return ok
}

// waitingFor is what an Application in progress still waits for: the
// objects that were not Current at its last health check, for the manifests
// of one digest.
type waitingFor struct {
	digest string
	refs   []apply.Ref
	total  int
}

// touchedObjects are the owned objects of one Application whose status
// changed since its health was last read whole.
type touchedObjects struct {
	mu  sync.Mutex
	ids map[objectID]struct{}
}

// statusChanged records that obj, owned by app, changed its status (a
// status-only update, seen by the watches), for an Application this
// process reconciles (an object left by a deleted one records nothing).
func (r *Reconciler) statusChanged(app types.NamespacedName, obj objectID) {
	v, ok := r.touched.Load(app)
	if !ok {
		if _, known := r.lastFetch.Load(app); !known {
			return
		}
		v, _ = r.touched.LoadOrStore(app, &touchedObjects{ids: map[objectID]struct{}{}})
	}
	t := v.(*touchedObjects)
	t.mu.Lock()
	t.ids[obj] = struct{}{}
	t.mu.Unlock()
}

// untouch forgets the status changes of refs, about to be read.
func (r *Reconciler) untouch(app types.NamespacedName, refs []apply.Ref) {
	v, ok := r.touched.Load(app)
	if !ok || r.Mapper == nil {
		return
	}
	t := v.(*touchedObjects)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ids) == 0 {
		return
	}
	for _, ref := range refs {
		if m, err := r.Mapper.RESTMapping(ref.GVK.GroupKind(), ref.GVK.Version); err == nil {
			delete(t.ids, objectID{gr: m.Resource.GroupResource(), namespace: ref.Namespace, name: ref.Name})
		}
	}
}

// touchedBesides reports whether an object of app other than those of
// refs changed its status since app's health was last read whole (or
// refs cannot be mapped, to be safe).
func (r *Reconciler) touchedBesides(app types.NamespacedName, refs []apply.Ref) bool {
	v, ok := r.touched.Load(app)
	if !ok {
		return false
	}
	t := v.(*touchedObjects)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ids) == 0 {
		return false
	}
	known := map[objectID]bool{}
	for _, ref := range refs {
		if r.Mapper == nil {
			return true
		}
		m, err := r.Mapper.RESTMapping(ref.GVK.GroupKind(), ref.GVK.Version)
		if err != nil {
			return true
		}
		known[objectID{gr: m.Resource.GroupResource(), namespace: ref.Namespace, name: ref.Name}] = true
	}
	for id := range t.ids {
		if !known[id] {
			return true
		}
	}
	return false
}

// healthReport computes the health of app's inventory. While a rollout is
// in progress only the objects that were not Current at the previous check
// are read again (a Deployment, not its ServiceAccount, Service and
// Ingress); the first check, and every check once the Application is
// settled, read them all. An object going bad meanwhile is seen by the
// watches: a spec change or deletion triggers a full pass, and a status
// change has the check that would find the subset Healthy read them all
// first.
func (r *Reconciler) healthReport(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, since time.Time, seed *seeded) (apply.Report, error) {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	refs := refsOf(app.Status.Inventory)
	var rep apply.Report
	if seed != nil && len(seed.refs) == len(refs) {
		rep, refs = seed.report, seed.refs
		rep = r.excuseTTLJobs(ctx, app, rep)
	} else {
		subset := false
		if w, ok := r.waiting.Load(key); ok && w.(waitingFor).digest == app.Status.LastAppliedDigest && w.(waitingFor).total == len(refs) {
			refs, subset = w.(waitingFor).refs, true
		}
		if subset {
			r.untouch(key, refs) // read now
		} else {
			r.touched.Delete(key) // read whole from here
		}
		var err error
		if rep, err = mgr.HealthSince(ctx, refs, since); err != nil {
			return rep, err
		}
		rep = r.excuseTTLJobs(ctx, app, rep)
		if subset && rep.Health == apply.Healthy && r.touchedBesides(key, refs) {
			// An object that was Current when the subset was taken has
			// changed its status since: read them all before calling
			// the Application Healthy (and its release with it).
			r.touched.Delete(key)
			refs = refsOf(app.Status.Inventory)
			if rep, err = mgr.HealthSince(ctx, refs, since); err != nil {
				// The marks are spent: the next check reads them all.
				r.waiting.Delete(key)
				return rep, err
			}
			rep = r.excuseTTLJobs(ctx, app, rep)
		}
	}
	if rep.Health != apply.Progressing {
		r.waiting.Delete(key)
		return rep, nil
	}
	var pending []apply.Ref
	for i, o := range rep.Objects {
		if o.Status != status.CurrentStatus {
			pending = append(pending, refs[i])
		}
	}
	r.waiting.Store(key, waitingFor{digest: app.Status.LastAppliedDigest, refs: pending, total: len(app.Status.Inventory)})
	return rep, nil
}

// seeded is the health of an Application's objects computed from what
// its sync's apply returned, when nothing was still in progress.
type seeded struct {
	report apply.Report
	refs   []apply.Ref
}

// seedHealth uses the state of app's objects as the sync's apply returned
// them (write results, or the dry-run of an unchanged object) so that the
// health check that follows reads only what is still in progress: a
// Deployment just created, not its ServiceAccount, Service or Ingress,
// which are Current at once. When nothing is in progress it reads nothing.
// A sync that did not return every object's state (a Helm release, whose
// change set comes from the validation before Helm's upgrade) leaves the
// check to read them all.
func (r *Reconciler) seedHealth(app *berthv1.Application, cs apply.ChangeSet) *seeded {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	// What an earlier check found pending says nothing about this sync.
	r.waiting.Delete(key)
	var objs []*unstructured.Unstructured
	for _, e := range cs.Entries {
		if e.Action == apply.Deleted || e.Action == apply.Skipped {
			continue
		}
		objs = append(objs, e.Live)
	}
	if len(objs) != len(app.Status.Inventory) {
		return nil
	}
	since := time.Time{}
	if app.Status.LastAppliedAt != nil {
		since = app.Status.LastAppliedAt.Time
	}
	rep, refs, ok := apply.HealthOf(objs, since)
	switch {
	case !ok:
		return nil
	case rep.Health != apply.Progressing:
		// Healthy, or a verdict (Degraded) the check must not lose.
		return &seeded{report: rep, refs: refs}
	}
	// Read only what is still in progress, and only at the check: by
	// then a fresh rollout has often finished, and one status write says
	// so.
	var pending []apply.Ref
	for i, o := range rep.Objects {
		if o.Status != status.CurrentStatus {
			pending = append(pending, refs[i])
		}
	}
	r.waiting.Store(key, waitingFor{digest: app.Status.LastAppliedDigest, refs: pending, total: len(app.Status.Inventory)})
	return nil
}

func (r *Reconciler) healthTimeout(app *berthv1.Application) time.Duration {
	if app.Spec.HealthTimeout != nil && app.Spec.HealthTimeout.Duration > 0 {
		return app.Spec.HealthTimeout.Duration
	}
	return 5 * time.Minute
}

// health computes kstatus over the inventory and sets Ready. seed, when
// not nil, is the state the sync just applied (see seedHealth): nothing is
// read.
func (r *Reconciler) health(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, seed *seeded) (ctrl.Result, error) {
	since := time.Time{}
	if app.Status.LastAppliedAt != nil {
		since = app.Status.LastAppliedAt.Time
	}
	// Mark the Application as waiting before reading, so that a status
	// change landing while we read still brings a recheck.
	r.healthDue.Store(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, struct{}{})
	rep, err := r.healthReport(ctx, app, mgr, since, seed)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("computing health: %w", err)
	}
	rev := short(app.Status.LastAppliedRevision)
	prev := app.Status.Health
	health := rep.Health
	if health == apply.Progressing && app.Status.LastAppliedAt != nil &&
		time.Since(app.Status.LastAppliedAt.Time) > r.healthTimeout(app) {
		health = apply.Degraded
	}
	app.Status.Health = string(health)
	pinned := ""
	if p := app.Status.Pin; p != nil {
		pinned = fmt.Sprintf("pinned to release %d, Git at %s (%s); ", p.Release, short(app.Status.LastFetchedRevision), p.Reason)
	}
	// The report may cover only the objects still in progress; the
	// counts are the inventory's.
	verdict := fmt.Sprintf("%s, %d objects", health, len(app.Status.Inventory))
	if health != apply.Healthy {
		verdict = describeFailing(rep)
	}
	if res, err := r.releaseOutcome(ctx, app, mgr, health, verdict); err != nil || res != nil {
		return deref(res), err
	}
	if app.Status.Pin != nil && pinned == "" {
		p := app.Status.Pin
		pinned = fmt.Sprintf("pinned to release %d, Git at %s (%s); ", p.Release, short(app.Status.LastFetchedRevision), p.Reason)
	}
	if health != apply.Progressing {
		r.healthDue.Delete(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})
	}
	switch health {
	case apply.Healthy:
		r.lastHealthy.Store(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, time.Now())
		healthy(app, pinned)
		return ctrl.Result{RequeueAfter: r.interval(app)}, nil
	case apply.Progressing:
		msg := fmt.Sprintf("%srevision %s applied, waiting for %s", pinned, rev, describeFailing(rep))
		setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, "Progressing", msg)
		setCondition(app, berthv1.ConditionReconciling, metav1.ConditionTrue, "Progressing", msg)
		// Status changes of the owned objects bring the next check (see
		// watch.go); the poll is a fallback, and comes in time for the
		// health timeout.
		next := healthPoll
		if app.Status.LastAppliedAt != nil {
			if left := time.Until(app.Status.LastAppliedAt.Add(r.healthTimeout(app))); left > 0 && left+100*time.Millisecond < next {
				next = left + 100*time.Millisecond
			}
		}
		return ctrl.Result{RequeueAfter: next}, nil
	default:
		msg := fmt.Sprintf("revision %s is unhealthy: %s", rev, describeFailing(rep))
		if rep.Health == apply.Progressing {
			msg = fmt.Sprintf("revision %s not healthy after %s: %s", rev, r.healthTimeout(app), describeFailing(rep))
		}
		setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, "HealthCheckFailed", msg)
		setCondition(app, berthv1.ConditionReconciling, metav1.ConditionFalse, "HealthCheckFailed", msg)
		if prev != string(health) {
			r.Recorder.Event(app, corev1.EventTypeWarning, "HealthCheckFailed", msg)
			r.metrics.Failures.WithLabelValues(app.Namespace, app.Name, "HealthCheckFailed").Inc()
		}
		return ctrl.Result{RequeueAfter: min(r.interval(app), 30*time.Second)}, nil
	}
}

// healthy sets Ready, and Reconciling False: the applied revision runs
// and every object it holds is Current. pinned prefixes the message.
func healthy(app *berthv1.Application, pinned string) {
	msg := fmt.Sprintf("%srevision %s applied, %d objects healthy", pinned, short(app.Status.LastAppliedRevision), len(app.Status.Inventory))
	setCondition(app, berthv1.ConditionReady, metav1.ConditionTrue, "Succeeded", msg)
	setCondition(app, berthv1.ConditionReconciling, metav1.ConditionFalse, "Succeeded", msg)
}

func describeFailing(rep apply.Report) string {
	var parts []string
	for i, o := range rep.Failing() {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(rep.Failing())-5))
			break
		}
		msg := string(o.Status)
		if o.Message != "" {
			msg += ": " + o.Message
		}
		parts = append(parts, o.ID+" ("+msg+")")
	}
	return strings.Join(parts, "; ")
}

// disprovedByObserve are the Stalled reasons a successful observe pass
// shows to be over: what it checks again (credentials, render, the policy
// gate, the dry run as the Application's account).
var disprovedByObserve = map[string]bool{
	"CredentialsUnavailable": true, "RenderFailed": true, "PolicyInvalid": true, "ImagePullSecretInvalid": true,
	"PolicyViolation": true, "InvalidHook": true, "EmptyRevision": true, "PermissionDenied": true,
	"ValidationFailed": true, reasonClaimed: true, reasonClusterUnavailable: true,
	// Checked by every pass before it gets this far.
	"NoServiceAccount": true, "CrossNamespaceRefused": true, "InvalidCommit": true, "NameTooLong": true,
}

// observe reports without writing: drift in detect mode, or a new revision
// while automated sync is off.
func (r *Reconciler) observe(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, rev *revision, newRevision bool) (ctrl.Result, error) {
	objs := rev.objects
	if !newRevision {
		// A Job gone past its TTL is no drift of the revision it ran for.
		objs = withoutRemovedTTLJobs(ctx, mgr, objs)
	}
	drifted, err := mgr.Drifted(ctx, objs)
	if err != nil && transient(err) {
		return r.retrySoon(app, rev.sha, err), nil
	}
	if err != nil {
		r.reject(app, rev.sha, reasonFor(err), err)
		return ctrl.Result{RequeueAfter: r.interval(app)}, nil
	}
	// The revision rendered, passed the gate and its dry run as the
	// Application's account: a stall over one of those (refused rights,
	// unreadable credentials, a rejected revision) is over. Others (a
	// failed hook or rollback, retries run out, a Helm release refused)
	// are not checked again here and stay until a sync or a person ends
	// them.
	if c := meta.FindStatusCondition(app.Status.Conditions, berthv1.ConditionStalled); c != nil && disprovedByObserve[c.Reason] {
		meta.RemoveStatusCondition(&app.Status.Conditions, berthv1.ConditionStalled)
	}
	r.transientTries.Delete(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})
	// Drift in detect mode is seen by the watches too, after a restart
	// (the watcher starts empty) as after a sync.
	r.watcher.ensure(ctx, app, app.Status.Inventory)
	if newRevision {
		app.Status.Sync = "OutOfSync"
		what := "is not applied"
		if rev.sha == app.Status.LastAppliedRevision {
			what = "renders other manifests than applied (the Application's spec, or what its chart reads, changed)"
		}
		msg := fmt.Sprintf("revision %s %s: automated sync is off (run `berth sync %s`); %d object(s) would change", short(rev.sha), what, app.Name, len(drifted))
		setCondition(app, berthv1.ConditionReconciling, metav1.ConditionFalse, "AwaitingSync", msg)
		if app.Status.LastAppliedRevision == "" {
			setCondition(app, berthv1.ConditionReady, metav1.ConditionFalse, "AwaitingSync", msg)
			return ctrl.Result{RequeueAfter: r.interval(app)}, nil
		}
		res, err := r.health(ctx, app, mgr, nil)
		// What runs is settled (health wrote Reconciling False): the
		// waiting revision is the news.
		if !meta.IsStatusConditionTrue(app.Status.Conditions, berthv1.ConditionReconciling) {
			setCondition(app, berthv1.ConditionReconciling, metav1.ConditionFalse, "AwaitingSync", msg)
		}
		return res, err
	}
	r.metrics.Drift.WithLabelValues(app.Namespace, app.Name).Set(float64(len(drifted)))
	if len(drifted) == 0 {
		app.Status.Sync = "Synced"
		if app.Status.Drift != nil {
			app.Status.Drift.Objects = nil
		}
		meta.RemoveStatusCondition(&app.Status.Conditions, berthv1.ConditionDrifted)
		return r.health(ctx, app, mgr, nil)
	}
	app.Status.Sync = "OutOfSync"
	if app.Status.Drift == nil {
		app.Status.Drift = &berthv1.DriftSummary{}
	}
	changed := strings.Join(drifted, ",") != strings.Join(app.Status.Drift.Objects, ",")
	app.Status.Drift.Objects = drifted
	now := metav1.Now()
	app.Status.Drift.DetectedAt = &now
	msg := fmt.Sprintf("%d object(s) differ from revision %s: %s (drift mode %s: not corrected; see `berth diff %s`)",
		len(drifted), short(rev.sha), strings.Join(drifted, ", "), app.Spec.SyncPolicy.Drift, app.Name)
	setCondition(app, berthv1.ConditionDrifted, metav1.ConditionTrue, "DriftDetected", msg)
	if changed {
		r.Recorder.Event(app, corev1.EventTypeWarning, "DriftDetected", msg)
	}
	return r.health(ctx, app, mgr, nil)
}
