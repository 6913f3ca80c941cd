package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apps"
	"github.com/berth-dev/berth/internal/helmrelease"
	"github.com/berth-dev/berth/internal/release"
)

func (f *fixture) releases(app string) []berthv1.Release {
	f.t.Helper()
	rels, err := (&release.Store{Client: f.c}).List(context.Background(), f.ns, app)
	must(f.t, err)
	return rels
}

// waitReleasesHealthy waits until app has n releases, the newest Healthy.
func (f *fixture) waitReleasesHealthy(app string, n int) {
	f.t.Helper()
	f.waitApp(app, 30*time.Second, fmt.Sprintf("release %d recorded healthy", n), func(*berthv1.Application) bool {
		rels := f.releases(app)
		return len(rels) == n && rels[0].Status.Health == berthv1.ReleaseHealthy
	})
}

// annotate sets annotation k to v on Application app, as a user's request
// would (one the CLI would not send, such as a rollback to no release).
func (f *fixture) annotate(app, k, v string) {
	f.t.Helper()
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, k, v))
	must(f.t, f.c.Patch(context.Background(), &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: app}},
		client.RawPatch(types.MergePatchType, patch)))
}

func releaseSummary(rels []berthv1.Release) string {
	var parts []string
	for _, r := range rels {
		parts = append(parts, r.Name+"="+r.Spec.Trigger+"/"+r.Status.Health)
	}
	return strings.Join(parts, " ")
}

func image(f *fixture) string {
	var d appsv1.Deployment
	f.get(&d, "web")
	return d.Spec.Template.Spec.Containers[0].Image
}

func TestAutomaticRollbackPinsAndNewCommitResumes(t *testing.T) {
	f := newFixture(t)
	good := f.wt.Write("app/deploy.yaml", deploy("1")).CommitAndPush("good")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "good release healthy", appliedReady(good))

	bad := strings.Replace(deploy("2-never-ready"), "spec:\n  replicas: 2", "spec:\n  progressDeadlineSeconds: 4\n  replicas: 2", 1)
	badSHA := f.wt.Write("app/deploy.yaml", bad).CommitAndPush("bad image")
	app := f.waitApp("demo", 90*time.Second, "rolled back and pinned", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.Pin.FromCommit == badSHA && ready(a)
	})
	if got := image(f); got != "example.test/web:1" {
		t.Errorf("image after rollback = %q, want the good one", got)
	}
	if app.Spec.SyncPolicy.Automated != nil && !*app.Spec.SyncPolicy.Automated {
		t.Error("automated sync was turned off")
	}
	rels := f.releases("demo")
	if len(rels) != 3 || rels[0].Spec.Trigger != berthv1.TriggerRollback || rels[0].Spec.RollbackOf != 1 ||
		rels[1].Status.Health != berthv1.ReleaseRolledBack || rels[1].Spec.Commit != badSHA {
		t.Fatalf("releases = %s", releaseSummary(rels))
	}
	if !strings.Contains(condition(app, berthv1.ConditionReady).Message, "pinned to release 3") {
		t.Errorf("Ready message = %q", condition(app, berthv1.ConditionReady).Message)
	}

	// No flapping for two minutes: Git still points at the bad commit,
	// auto-sync is on (polling every 2 s), and the agent keeps the pinned
	// release, healthy, without a single new release or re-apply.
	gen := deploymentGeneration(f)
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(2 * time.Second) {
		if rels := f.releases("demo"); len(rels) != 3 {
			t.Fatalf("releases changed while pinned: %s", releaseSummary(rels))
		}
		if got := image(f); got != "example.test/web:1" {
			t.Fatalf("the bad commit was re-applied while pinned: %q", got)
		}
		a := f.waitApp("demo", time.Second, "read", func(*berthv1.Application) bool { return true })
		if !ready(a) || a.Status.Pin == nil {
			t.Fatalf("flapped while pinned: %s", describeStatus(a))
		}
	}
	if g := deploymentGeneration(f); g != gen {
		t.Fatalf("Deployment generation %d → %d while pinned", gen, g)
	}

	// A newer commit ends the pin.
	fixed := f.wt.Write("app/deploy.yaml", deploy("3")).CommitAndPush("fix")
	app = f.waitApp("demo", 60*time.Second, "new commit applied", appliedReady(fixed))
	if app.Status.Pin != nil {
		t.Errorf("still pinned after a new commit: %+v", app.Status.Pin)
	}
	if got := image(f); got != "example.test/web:3" {
		t.Errorf("image = %q after the fix", got)
	}
	rels = f.releases("demo")
	deadline := time.Now().Add(30 * time.Second)
	for rels[0].Status.Health != berthv1.ReleaseHealthy && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		rels = f.releases("demo")
	}
	if rels[0].Spec.Number != 4 || rels[0].Status.Health != berthv1.ReleaseHealthy || rels[0].Status.WayBack == nil || rels[0].Status.WayBack.Status != "Verified" {
		t.Errorf("release 4 = %+v", rels[0].Status)
	}
}

func TestManualRollbackAndUnpin(t *testing.T) {
	f := newFixture(t)
	v1 := f.wt.Write("app/cm.yaml", cm("settings", "v1")).CommitAndPush("v1")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "v1", appliedReady(v1))
	v2 := f.wt.Write("app/cm.yaml", cm("settings", "v2")).CommitAndPush("v2")
	f.waitApp("demo", 60*time.Second, "v2", appliedReady(v2))
	f.waitReleasesHealthy("demo", 2)

	key := types.NamespacedName{Namespace: f.ns, Name: "demo"}
	// `berth rollback` with no --to: the newest healthy release before the
	// current one. It waits for the release the rollback recorded, and its
	// verdict.
	code, out, errOut := f.berth("rollback", "demo", "--timeout", "60s")
	if code != 0 || !strings.Contains(out, "demo rolled back to release 1 as release 3") || !strings.Contains(out, "healthy; pinned while Git is at "+v2[:7]) {
		t.Fatalf("berth rollback: exit %d, stdout %q, stderr %q; want release 1 rolled back to as release 3, healthy, pinned", code, out, errOut)
	}
	f.waitApp("demo", 30*time.Second, "pinned to the rollback", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.Pin.FromCommit == v2 && ready(a)
	})
	var c corev1.ConfigMap
	f.get(&c, "settings")
	if c.Data["greeting"] != "v1" {
		t.Fatalf("after rollback greeting = %q", c.Data["greeting"])
	}
	time.Sleep(5 * time.Second) // auto-sync is on and Git says v2
	f.get(&c, "settings")
	if c.Data["greeting"] != "v1" {
		t.Fatalf("auto-sync undid the rollback: %q", c.Data["greeting"])
	}

	// A request for a release that is not there (trimmed since the CLI
	// looked) is refused, and heard as such.
	f.annotate("demo", berthv1.RollbackAnnotation, "999@gone")
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := apps.WaitRollback(wctx, f.c, key, "999@gone"); err == nil || !strings.Contains(err.Error(), "the agent refused the rollback") || !strings.Contains(err.Error(), "no such release") {
		t.Fatalf("WaitRollback for a missing release = %v, want the agent's refusal", err)
	}

	must(t, apps.RequestUnpin(context.Background(), f.c, key))
	f.waitApp("demo", 30*time.Second, "following Git again", func(a *berthv1.Application) bool {
		return a.Status.Pin == nil && a.Status.LastAppliedRevision == v2 && ready(a)
	})
	f.get(&c, "settings")
	if c.Data["greeting"] != "v2" {
		t.Errorf("after unpin greeting = %q", c.Data["greeting"])
	}
}

// A pinned release is held as Git's commit would be: in drift mode
// detect, an edit made by hand (during the incident the rollback is part
// of) is reported, not overwritten.
func TestAPinnedApplicationInDetectModeReportsDrift(t *testing.T) {
	f := newFixture(t)
	v1 := f.wt.Write("app/cm.yaml", cm("settings", "v1")).CommitAndPush("v1")
	f.createApp("demo", "app", func(a *berthv1.Application) { a.Spec.SyncPolicy.Drift = berthv1.DriftDetect })
	f.waitApp("demo", 60*time.Second, "v1", appliedReady(v1))
	v2 := f.wt.Write("app/cm.yaml", cm("settings", "v2")).CommitAndPush("v2")
	f.waitApp("demo", 60*time.Second, "v2", appliedReady(v2))
	f.waitReleasesHealthy("demo", 2)
	if code, out, errOut := f.berth("rollback", "demo", "--timeout", "60s"); code != 0 {
		t.Fatalf("berth rollback: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	f.waitApp("demo", 30*time.Second, "pinned to the rollback", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.Pin.FromCommit == v2 && ready(a)
	})

	var c corev1.ConfigMap
	f.get(&c, "settings")
	c.Data["greeting"] = "by hand"
	must(t, f.c.Update(context.Background(), &c))
	app := f.waitApp("demo", 30*time.Second, "the edit reported as drift", func(a *berthv1.Application) bool {
		d := condition(a, berthv1.ConditionDrifted)
		return d != nil && d.Status == metav1.ConditionTrue && strings.Contains(d.Message, "settings")
	})
	if app.Status.Pin == nil || app.Status.Sync != "Pinned" {
		t.Errorf("pin %+v, sync %q after the drift report; want still pinned", app.Status.Pin, app.Status.Sync)
	}
	time.Sleep(6 * time.Second) // three polls, and the watch event
	f.get(&c, "settings")
	if c.Data["greeting"] != "by hand" {
		t.Errorf("greeting = %q: the pinned release overwrote an edit in drift mode detect", c.Data["greeting"])
	}
}

// With prune off, a rollback keeps what the release rolled away from
// added, as a sync keeps what a commit removed.
func TestRollbackPrunesOnlyWhenPruneIsOn(t *testing.T) {
	f := newFixture(t)
	v1 := f.wt.Write("app/cm.yaml", cm("settings", "v1")).CommitAndPush("v1")
	off := false
	f.createApp("demo", "app", func(a *berthv1.Application) { a.Spec.SyncPolicy.Prune = &off })
	f.waitApp("demo", 60*time.Second, "v1", appliedReady(v1))
	v2 := f.wt.Write("app/extra.yaml", cm("extra", "v2")).CommitAndPush("v2")
	f.waitApp("demo", 60*time.Second, "v2", appliedReady(v2))
	f.waitReleasesHealthy("demo", 2)
	key := types.NamespacedName{Namespace: f.ns, Name: "demo"}
	_, _, err := apps.RequestRollback(context.Background(), f.c, key, 1)
	must(t, err)
	f.waitApp("demo", 30*time.Second, "pinned to the rollback", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.Pin.FromCommit == v2 && ready(a)
	})
	if !f.get(&corev1.ConfigMap{}, "extra") {
		t.Error("the rollback pruned ConfigMap extra although prune is off")
	}
}

func TestRehearsalFlagsABlockedWayBack(t *testing.T) {
	f := newFixture(t)
	v1 := f.wt.Write("app/cm.yaml", cm("settings", "v1")).CommitAndPush("mutable")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "v1", appliedReady(v1))
	// Release 2 makes the ConfigMap immutable with new data: going back to
	// release 1 would need to change immutable data.
	v2 := f.wt.Write("app/cm.yaml", cm("settings", "v2")+"immutable: true\n").CommitAndPush("immutable")
	f.waitApp("demo", 60*time.Second, "v2", appliedReady(v2))
	var rels []berthv1.Release
	deadline := time.Now().Add(30 * time.Second)
	for {
		rels = f.releases("demo")
		if len(rels) == 2 && rels[0].Status.WayBack != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no way back recorded: %s", releaseSummary(rels))
		}
		time.Sleep(300 * time.Millisecond)
	}
	wb := rels[0].Status.WayBack
	if wb.Status != "Blocked" || wb.ToRelease != 1 || !strings.Contains(wb.Reason, "immutable") {
		t.Errorf("way back = %+v, want Blocked to 1 naming the immutable field", wb)
	}
}

// A Deployment selector is immutable, so a release that changes it cannot
// reach the cluster, and thus can never leave a way back blocked by it: the
// whole revision is refused by the server-side dry-run, nothing is applied,
// and the running release stays.
func TestSelectorChangeIsRefusedBeforeItCanBlockTheWayBack(t *testing.T) {
	f := newFixture(t)
	v1 := f.wt.Write("app/deploy.yaml", deploy("1")).CommitAndPush("v1")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "v1", appliedReady(v1))
	changed := strings.ReplaceAll(deploy("2"), "{app: web}", "{app: web, tier: front}")
	f.wt.Write("app/deploy.yaml", changed).CommitAndPush("new selector")
	app := f.waitApp("demo", 30*time.Second, "refused", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Reason == "ValidationFailed"
	})
	if msg := condition(app, berthv1.ConditionStalled).Message; !strings.Contains(msg, "immutable") {
		t.Errorf("message = %q, want the immutable selector named", msg)
	}
	if got := image(f); got != "example.test/web:1" {
		t.Errorf("image = %q: part of the refused revision was applied", got)
	}
	if rels := f.releases("demo"); len(rels) != 1 {
		t.Errorf("releases = %s, want only release 1", releaseSummary(rels))
	}
}

// An automatic rollback that fails after it has started (here: its
// release cannot be recorded) is retried while Git still points at the
// failed commit; the failed commit is never re-applied over the way back.
func TestFailedAutomaticRollbackIsRetriedNotDropped(t *testing.T) {
	f := newFixture(t)
	good := f.wt.Write("app/deploy.yaml", deploy("1")).CommitAndPush("good")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "good release healthy", appliedReady(good))
	thaw := freezeReleasesOf(t, f, berthv1.TriggerRollback, berthv1.TriggerRollback)

	bad := strings.Replace(deploy("2-never-ready"), "spec:\n  replicas: 2", "spec:\n  progressDeadlineSeconds: 4\n  replicas: 2", 1)
	badSHA := f.wt.Write("app/deploy.yaml", bad).Write("app/backup.yaml", hook("backup", "pre-sync")).
		Write("app/restore.yaml", hook("restore", "restore")).CommitAndPush("bad image, with a migration")
	f.waitApp("demo", 90*time.Second, "rollback failed", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Status == "True" && s.Reason == "RollbackFailed" && strings.Contains(s.Message, "frozen")
	})
	// The restore ran before the record failed, and says so at once: a
	// later rollback (after a new commit) must not restore it again.
	restored := f.releases("demo")[0].Status.Restored
	if restored == nil || restored.ForRollback != 0 {
		t.Fatalf("release 2 restored = %+v, want marked, by a rollback not recorded yet", restored)
	}
	// The rollback re-applied release 1 before its record failed. Passes
	// come every 2 s: none may put the failed commit back.
	staysFor8s(t, "image", func() string { return image(f) }, "example.test/web:1", "the failed commit was re-applied")
	thaw()
	app := f.waitApp("demo", 60*time.Second, "rolled back on retry and pinned", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.Pin.FromCommit == badSHA && ready(a)
	})
	rels := f.releases("demo")
	if len(rels) != 3 || rels[0].Spec.Trigger != berthv1.TriggerRollback || rels[0].Spec.RollbackOf != 1 ||
		rels[1].Status.Health != berthv1.ReleaseRolledBack {
		t.Fatalf("releases = %s", releaseSummary(rels))
	}
	if got := image(f); got != "example.test/web:1" {
		t.Errorf("image = %q, want the good one", got)
	}
	if s := condition(app, berthv1.ConditionStalled); s != nil && s.Status == "True" {
		t.Errorf("still Stalled: %s", s.Message)
	}
	if rs := rels[1].Status.Restored; rs == nil || rs.ForRollback != 3 {
		t.Errorf("release 2 restored = %+v, want named after release 3", rs)
	}
}

// A `berth rollback` that fails after its data restore (here: its release
// cannot be recorded) is retried until it lands: the data is back at the
// target's, and the commit rolled away from must not be re-applied over
// it. Refusals before any restore stay refusals. The rollback outlives the
// agent (status.unfinishedRollback): one started afterwards neither
// re-applies the release rolled away from nor restores again.
func TestManualRollbackFailingAfterItsRestoreIsRetried(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "same agent"
		if restart {
			name = "restarted agent"
		}
		t.Run(name, func(t *testing.T) { manualRollbackFailingAfterRestore(t, restart) })
	}
}

func manualRollbackFailingAfterRestore(t *testing.T, restart bool) {
	f := newFixture(t)
	f.hookedSettingsApp()
	v2 := f.wt.Write("app/cm.yaml", cm("settings", "v2")).CommitAndPush("v2, with a migration")
	f.waitApp("demo", 60*time.Second, "v2", appliedReady(v2))
	f.waitReleasesHealthy("demo", 2)

	thaw := freezeReleasesOf(t, f, berthv1.TriggerRollback, berthv1.TriggerRollback)
	key := types.NamespacedName{Namespace: f.ns, Name: "demo"}
	_, _, err := apps.RequestRollback(context.Background(), f.c, key, 1)
	must(t, err)
	f.waitApp("demo", 60*time.Second, "rollback failed after its restore, recorded in status", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		u := a.Status.UnfinishedRollback
		return s != nil && s.Status == "True" && s.Reason == "RollbackFailed" && strings.Contains(s.Message, "retried") &&
			u != nil && u.Target == 1 && u.FromRelease == 2 && u.FromCommit == v2 && !u.Held
	})
	if rs := f.releases("demo")[0].Status.Restored; rs == nil {
		t.Fatal("release 2 is not marked restored: the test does not test a failure after the restore")
	}
	if restart {
		f.stopAgent(0)
		f.startAgent(false, nil)
	} else {
		// A request that is refused (no release 99) leaves it in place.
		f.annotate("demo", berthv1.RollbackAnnotation, "99@refused")
	}
	// Passes come every 2 s: none may put v2 back over the restored data.
	staysFor8s(t, "greeting", f.greeting, "v1", "v2 was re-applied over restored data")
	thaw()
	app := f.waitApp("demo", 60*time.Second, "rolled back on retry and pinned", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.Pin.FromCommit == v2 && a.Status.CurrentRelease == 3 && ready(a)
	})
	if app.Status.UnfinishedRollback != nil {
		t.Errorf("unfinishedRollback = %+v after the rollback succeeded", app.Status.UnfinishedRollback)
	}
	rels := f.releases("demo")
	if len(rels) != 3 || rels[0].Spec.Trigger != berthv1.TriggerRollback || rels[0].Spec.RollbackOf != 1 {
		t.Fatalf("releases = %s", releaseSummary(rels))
	}
	if got := f.hookJobs("restore-"); len(got) != 1 {
		t.Errorf("restore Jobs = %v, want one: the retries must not restore again", got)
	}
	if g := f.greeting(); g != "v1" {
		t.Errorf("greeting = %q", g)
	}
}

// The same while pinned: a `berth rollback` from a pinned release that
// fails after its restore is retried, and the pinned release is not
// re-applied over the restored data meanwhile.
func TestPinnedManualRollbackFailingAfterItsRestoreIsRetried(t *testing.T) {
	f := newFixture(t)
	f.hookedSettingsApp()
	for i, g := range []string{"v2", "v3"} {
		sha := f.wt.Write("app/cm.yaml", cm("settings", g)).CommitAndPush(g)
		f.waitApp("demo", 60*time.Second, g, appliedReady(sha))
		f.waitReleasesHealthy("demo", i+2)
	}
	key := types.NamespacedName{Namespace: f.ns, Name: "demo"}
	_, _, err := apps.RequestRollback(context.Background(), f.c, key, 2)
	must(t, err)
	f.waitApp("demo", 60*time.Second, "pinned to release 4 (release 2's manifests)", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.CurrentRelease == 4 && ready(a)
	})

	// A `berth sync` asked while pinned stays standing (the pin holds): it
	// must not end the retry below.
	f.annotate("demo", berthv1.SyncRequestedAnnotation, "standing")

	// From the pin, back to release 1: release 2's backup is restored, then
	// the record fails.
	thaw := freezeReleasesOf(t, f, berthv1.TriggerRollback, berthv1.TriggerRollback)
	_, _, err = apps.RequestRollback(context.Background(), f.c, key, 1)
	must(t, err)
	f.waitApp("demo", 60*time.Second, "rollback failed after its restore", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Status == "True" && s.Reason == "RollbackFailed" && strings.Contains(s.Message, "retried")
	})
	staysFor8s(t, "greeting", f.greeting, "v1", "the pinned release was re-applied over restored data")
	thaw()
	f.waitApp("demo", 60*time.Second, "rolled back to release 1 on retry", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.CurrentRelease == 5 && ready(a)
	})
	if g := f.greeting(); g != "v1" {
		t.Errorf("greeting = %q", g)
	}
}

// A rollback recorded whose history could not be trimmed is a rollback:
// the Application is pinned to it, and no retry records another.
func TestRollbackRecordedWithoutTrimIsPinned(t *testing.T) {
	f := newFixture(t)
	good := f.wt.Write("app/deploy.yaml", deploy("1")).CommitAndPush("good")
	f.createApp("demo", "app", func(a *berthv1.Application) { a.Spec.Rollback.HistoryLimit = 2 })
	f.waitApp("demo", 60*time.Second, "good release healthy", appliedReady(good))
	freezeReleaseDeletes(t, f, "demo-r1")

	bad := strings.Replace(deploy("2-never-ready"), "spec:\n  replicas: 2", "spec:\n  progressDeadlineSeconds: 4\n  replicas: 2", 1)
	badSHA := f.wt.Write("app/deploy.yaml", bad).CommitAndPush("bad image")
	f.waitApp("demo", 90*time.Second, "rolled back and pinned", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.Pin.FromCommit == badSHA && ready(a)
	})
	time.Sleep(6 * time.Second) // passes every 2 s
	rels := f.releases("demo")
	if len(rels) != 3 || rels[0].Spec.Trigger != berthv1.TriggerRollback || rels[0].Spec.Number != 3 {
		t.Fatalf("releases = %s, want release 1 kept (the trim was refused) and one rollback", releaseSummary(rels))
	}
}

// staysFor8s checks, every 500 ms for 8 s (four 2 s passes of the agent),
// that get still returns want after a failed rollback; why says what a
// change would mean.
func staysFor8s(t *testing.T, what string, get func() string, want, why string) {
	t.Helper()
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if got := get(); got != want {
			t.Fatalf("%s = %q after the failed rollback: %s", what, got, why)
		}
	}
}

// Helm deletes what a chart no longer renders, on an upgrade and on a
// rollback alike, sparing only objects annotated
// helm.sh/resource-policy: keep. Under berth a chart's objects follow
// berth's prune rules instead: a claim the chart stops rendering is kept,
// on the way forward and on the way back, while a ConfigMap it drops is
// pruned.
func TestAChartsClaimIsKeptWhenTheChartDropsIt(t *testing.T) {
	f := newFixture(t)
	claim := func(name, volume string) string {
		return strings.Replace(strings.Replace(pvc, "name: data", "name: "+name, 1), "%s", volume, 1)
	}
	v1 := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).
		Write("chart/templates/extra.yaml", cm("extra", "v1")).
		Write("chart/templates/pvc.yaml", claim("data", f.persistentVolume())).
		CommitAndPush("v1: a claim and an extra ConfigMap")
	f.createApp("hello", "chart")
	f.waitApp("hello", 60*time.Second, "v1", appliedReady(v1))
	f.waitReleasesHealthy("hello", 1)

	// Forward: the chart stops rendering the claim and the ConfigMap, and
	// renders a second claim.
	v2 := f.wt.Remove("chart/templates/pvc.yaml").Remove("chart/templates/extra.yaml").
		Write("chart/templates/pvc2.yaml", claim("data2", f.namedVolume("pv2-"+f.ns))).
		Write("chart/templates/extra2.yaml", cm("extra2", "v2")).
		CommitAndPush("v2: the claim and the ConfigMap dropped, another claim and ConfigMap")
	f.waitApp("hello", 60*time.Second, "v2", appliedReady(v2))
	f.waitReleasesHealthy("hello", 2)
	if !f.get(&corev1.PersistentVolumeClaim{}, "data") {
		t.Error("the claim the chart dropped was deleted by the upgrade; it must be kept")
	}
	if f.get(&corev1.ConfigMap{}, "extra") {
		t.Error("the ConfigMap the chart dropped was not pruned")
	}
	if msg := f.waitEvent("hello", "PruneSkipped"); !strings.Contains(msg, "PersistentVolumeClaim") || !strings.Contains(msg, "/data") {
		t.Errorf("PruneSkipped event = %q, want the kept claim named", msg)
	}

	// Back: a rollback to release 1 goes through Helm's rollback, whose
	// target does not hold the second claim.
	_, _, err := apps.RequestRollback(context.Background(), f.c, types.NamespacedName{Namespace: f.ns, Name: "hello"}, 1)
	must(t, err)
	f.waitApp("hello", 60*time.Second, "pinned to the rollback", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.Pin.FromCommit == v2 && ready(a)
	})
	if !f.get(&corev1.PersistentVolumeClaim{}, "data2") {
		t.Error("the rollback deleted the claim its target does not hold; it must be kept")
	}
	if f.get(&corev1.ConfigMap{}, "extra2") {
		t.Error("the rollback did not prune the ConfigMap its target does not hold")
	}
	if !f.get(&corev1.ConfigMap{}, "extra") {
		t.Error("the rollback did not bring back the ConfigMap its target holds")
	}
	hist, err := helmrelease.History(f.env.Config, f.ns, "hello")
	must(t, err)
	if len(hist) != 3 || hist[2].Status != "deployed" {
		t.Errorf("helm history = %+v, want the rollback as revision 3", hist)
	}
}
