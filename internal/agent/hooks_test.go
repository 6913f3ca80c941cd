package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apps"
)

const hookJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: %s
  annotations:
    berth.dev/hook: %s
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: %s
        image: example.test/%s:1
`

func hook(name, kind string) string { return hookImage(name, kind, "1") }

// hookImage is a hook Job whose image has tag (see the sandbox's failure
// convention: "-crashloop" fails, "-never-ready" never finishes).
func hookImage(name, kind, tag string) string {
	return strings.Replace(fmt.Sprintf(hookJob, name, kind, name, name), ":1\n", ":"+tag+"\n", 1)
}

// settingsApp creates Application "demo" holding ConfigMap "settings" at
// greeting v1 and waits until it is applied and Ready; it returns the
// commit.
func (f *fixture) settingsApp() string {
	f.t.Helper()
	v1 := f.wt.Write("app/cm.yaml", cm("settings", "v1")).CommitAndPush("v1")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "v1", appliedReady(v1))
	return v1
}

// hookedSettingsApp is settingsApp with a pre-sync (backup) and a restore
// hook in every revision; mutate adjusts the Application.
func (f *fixture) hookedSettingsApp(mutate ...func(*berthv1.Application)) {
	f.t.Helper()
	f.wt.Write("app/cm.yaml", cm("settings", "v1")).Write("app/backup.yaml", hook("backup", "pre-sync")).
		Write("app/restore.yaml", hook("restore", "restore"))
	v1 := f.wt.CommitAndPush("v1")
	f.createApp("demo", "app", mutate...)
	f.waitApp("demo", 60*time.Second, "v1", appliedReady(v1))
}

// greeting returns the greeting of ConfigMap "settings".
func (f *fixture) greeting() string {
	f.t.Helper()
	var c corev1.ConfigMap
	f.get(&c, "settings")
	return c.Data["greeting"]
}

func badDeploy() string {
	return strings.Replace(deploy("2-never-ready"), "spec:\n  replicas: 2", "spec:\n  progressDeadlineSeconds: 3\n  replicas: 2", 1)
}

func jobEnv(j *batchv1.Job, name string) string {
	for _, e := range j.Spec.Template.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func jobComplete(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// A release whose pre-sync hook took a snapshot fails; the automatic
// rollback runs that release's restore hook with the snapshot bound to it,
// and the claim holding the data survives every step.
func TestRestoreHookRunsWithTheSnapshotBoundToTheRelease(t *testing.T) {
	f := newFixture(t)
	claim := strings.Replace(pvc, "%s", f.persistentVolume(), 1)
	good := f.wt.Write("app/deploy.yaml", deploy("1")).Write("app/pvc.yaml", claim).CommitAndPush("v1")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "v1 healthy", appliedReady(good))
	var data corev1.PersistentVolumeClaim
	f.get(&data, "data")

	badSHA := f.wt.Write("app/deploy.yaml", badDeploy()).
		Write("app/backup.yaml", hook("backup", "pre-sync")).
		Write("app/restore.yaml", hook("restore", "restore")).CommitAndPush("v2 with a migration")
	f.waitApp("demo", 90*time.Second, "rolled back and pinned", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.Pin.FromCommit == badSHA && ready(a)
	})
	rels := f.releases("demo")
	if len(rels) != 3 {
		t.Fatalf("releases = %s", releaseSummary(rels))
	}
	bad := rels[1]
	snap := bad.Spec.Snapshot
	if snap == nil || snap.ID == "" || !strings.HasPrefix(snap.Job, "backup-") {
		t.Fatalf("release 2 snapshot = %+v, want the pre-sync hook's", snap)
	}
	var backup batchv1.Job
	if !f.get(&backup, snap.Job) || !jobComplete(&backup) || jobEnv(&backup, "BERTH_SNAPSHOT") != snap.ID || jobEnv(&backup, "BERTH_COMMIT") != badSHA {
		t.Fatalf("pre-sync Job %s: complete=%v env=%v", snap.Job, jobComplete(&backup), backup.Spec.Template.Spec.Containers[0].Env)
	}
	if backup.Status.CompletionTime == nil || backup.Status.CompletionTime.After(bad.CreationTimestamp.Add(time.Second)) {
		t.Errorf("the snapshot finished at %v, after release 2 was applied at %v", backup.Status.CompletionTime, bad.CreationTimestamp)
	}
	rs := bad.Status.Restored
	if rs == nil || rs.Snapshot != snap.ID || rs.ForRollback != 3 {
		t.Fatalf("release 2 restored = %+v, want snapshot %s by release 3", rs, snap.ID)
	}
	var restore batchv1.Job
	if !f.get(&restore, rs.Job) || !jobComplete(&restore) || jobEnv(&restore, "BERTH_SNAPSHOT") != snap.ID || jobEnv(&restore, "BERTH_COMMIT") != good {
		t.Fatalf("restore Job %s: complete=%v env=%v", rs.Job, jobComplete(&restore), restore.Spec.Template.Spec.Containers[0].Env)
	}
	var after corev1.PersistentVolumeClaim
	if !f.get(&after, "data") || after.UID != data.UID {
		t.Fatalf("the claim was replaced or deleted on the way back")
	}
	if got := image(f); got != "example.test/web:1" {
		t.Errorf("image = %q after rollback", got)
	}
}

// A release that took a snapshot but declares no restore hook cannot be
// rolled back automatically: the agent refuses, says why, and stops.
func TestRollbackWithoutRestorePathIsRefused(t *testing.T) {
	f := newFixture(t)
	good := f.wt.Write("app/deploy.yaml", deploy("1")).CommitAndPush("v1")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "v1 healthy", appliedReady(good))
	f.wt.Write("app/deploy.yaml", badDeploy()).Write("app/backup.yaml", hook("backup", "pre-sync")).CommitAndPush("v2, no way back for data")
	app := f.waitApp("demo", 90*time.Second, "rollback refused", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Status == "True" && s.Reason == "RollbackFailed"
	})
	if msg := condition(app, berthv1.ConditionStalled).Message; !strings.Contains(msg, "no restore path") || !strings.Contains(msg, "release 2") {
		t.Errorf("Stalled message = %q", msg)
	}
	if app.Status.Pin != nil {
		t.Errorf("pinned although the rollback was refused: %+v", app.Status.Pin)
	}
	// Trying again cannot change a missing restore hook: the refusal is
	// held, neither retried nor replaced by a re-apply of release 2.
	msg := condition(app, berthv1.ConditionStalled).Message
	if !strings.Contains(msg, "not retried") {
		t.Errorf("Stalled message = %q, want it to say the rollback is not retried", msg)
	}
	time.Sleep(6 * time.Second)
	if s := condition(f.waitApp("demo", time.Second, "read", func(*berthv1.Application) bool { return true }), berthv1.ConditionStalled); s == nil || s.Status != "True" || s.Message != msg {
		t.Errorf("Stalled after a few passes = %+v, want the held refusal", s)
	}
	// `berth sync` is an instruction: it ends the hold.
	token, err := apps.RequestSync(context.Background(), f.c, types.NamespacedName{Namespace: f.ns, Name: "demo"})
	must(t, err)
	f.waitApp("demo", 30*time.Second, "the sync handled", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return a.Status.LastHandledSyncRequest == token && (s == nil || s.Reason != "RollbackFailed")
	})
	if rels := f.releases("demo"); len(rels) != 2 || rels[0].Status.Health != berthv1.ReleaseFailed {
		t.Errorf("releases = %s", releaseSummary(rels))
	}
}

// A hook on something that is not a Job is refused before anything is
// written.
func TestInvalidHookRejectsTheRevision(t *testing.T) {
	f := newFixture(t)
	good := f.wt.Write("app/cm.yaml", cm("settings", "v1")).CommitAndPush("v1")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "v1", appliedReady(good))
	hooked := strings.Replace(cm("settings", "v2"), "metadata:\n", "metadata:\n  annotations:\n    berth.dev/hook: pre-sync\n", 1)
	f.wt.Write("app/cm.yaml", hooked).CommitAndPush("hook on a ConfigMap")
	app := f.waitApp("demo", 30*time.Second, "rejected", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Reason == "InvalidHook"
	})
	if msg := condition(app, berthv1.ConditionStalled).Message; !strings.Contains(msg, "only valid on a batch/v1 Job") {
		t.Errorf("message = %q", msg)
	}
	var c corev1.ConfigMap
	f.get(&c, "settings")
	if c.Data["greeting"] != "v1" {
		t.Errorf("greeting = %q: the rejected revision was applied", c.Data["greeting"])
	}
}

// A pre-sync hook whose Job fails rejects the revision: nothing of it is
// applied, no release is recorded, and the condition names the hook.
func TestFailedPreSyncHookRejectsTheRevision(t *testing.T) {
	f := newFixture(t)
	f.settingsApp()
	failing := hookImage("backup", "pre-sync", "1-crashloop")
	f.wt.Write("app/cm.yaml", cm("settings", "v2")).Write("app/backup.yaml", failing).CommitAndPush("v2 with a failing backup")
	app := f.waitApp("demo", 60*time.Second, "rejected", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Reason == "PreSyncHookFailed"
	})
	if msg := condition(app, berthv1.ConditionStalled).Message; !strings.Contains(msg, "hook Job backup-") || !strings.Contains(msg, "failed") {
		t.Errorf("message = %q", msg)
	}
	if g := f.greeting(); g != "v1" {
		t.Errorf("greeting = %q: the rejected revision was applied", g)
	}
	if rels := f.releases("demo"); len(rels) != 1 {
		t.Errorf("releases = %s, want only the first", releaseSummary(rels))
	}
	failed := f.hookJobs("backup-")
	if len(failed) != 1 {
		t.Fatalf("backup Jobs after the failure = %v, want the failed one", failed)
	}

	// A fixed backup in the next commit is released; the failed run, which
	// no release holds and no later move can find again, is deleted with it.
	v3 := f.wt.Write("app/cm.yaml", cm("settings", "v3")).Write("app/backup.yaml", hook("backup", "pre-sync")).
		Write("app/restore.yaml", hook("restore", "restore")).CommitAndPush("v3 with a working backup")
	f.waitApp("demo", 60*time.Second, "v3", appliedReady(v3))
	rels := f.releases("demo")
	if len(rels) != 2 || rels[0].Spec.Snapshot == nil {
		t.Fatalf("releases = %s, want release 2 with a snapshot", releaseSummary(rels))
	}
	if got := f.hookJobs("backup-"); len(got) != 1 || got[0] != rels[0].Spec.Snapshot.Job {
		t.Errorf("backup Jobs after release 2 = %v, want only its own %s (the failed %s deleted)", got, rels[0].Spec.Snapshot.Job, failed[0])
	}
}

// hookJobs returns the names of the Jobs in the fixture's namespace that
// start with prefix (deleted ones left out).
func (f *fixture) hookJobs(prefix string) []string {
	f.t.Helper()
	var jobs batchv1.JobList
	must(f.t, f.c.List(context.Background(), &jobs, client.InNamespace(f.ns)))
	var out []string
	for _, j := range jobs.Items {
		if strings.HasPrefix(j.Name, prefix) && j.DeletionTimestamp == nil {
			out = append(out, j.Name)
		}
	}
	return out
}

// A revision the API server would refuse starts no backup: the pre-sync
// hook Job is a write, and a rejected revision writes nothing.
func TestInvalidRevisionStartsNoPreSyncHook(t *testing.T) {
	f := newFixture(t)
	f.settingsApp()
	invalid := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndta:\n  k: v\n"
	f.wt.Write("app/cm.yaml", cm("settings", "v2")).Write("app/backup.yaml", hook("backup", "pre-sync")).
		Write("app/broken.yaml", invalid).CommitAndPush("v2: a backup, and a ConfigMap with an unknown field")
	app := f.waitApp("demo", 60*time.Second, "rejected", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Reason == "ValidationFailed"
	})
	if msg := condition(app, berthv1.ConditionStalled).Message; !strings.Contains(msg, "broken.yaml") {
		t.Errorf("message = %q, want the file named", msg)
	}
	if got := f.hookJobs("backup-"); len(got) != 0 {
		t.Errorf("backup Jobs = %v: the hook ran for a revision that was then rejected", got)
	}
	if g := f.greeting(); g != "v1" {
		t.Errorf("greeting = %q: the rejected revision was applied", g)
	}
}

// A pre-sync hook that has started but not finished holds the revision:
// nothing of it is applied while the Job runs (kstatus alone would call
// the running Job Current and let the sync go on).
func TestRunningPreSyncHookHoldsTheRevision(t *testing.T) {
	f := newFixture(t)
	f.settingsApp()
	running := hookImage("backup", "pre-sync", "1-never-ready")
	f.wt.Write("app/cm.yaml", cm("settings", "v2")).Write("app/backup.yaml", running).CommitAndPush("v2 behind a backup that never ends")
	f.waitApp("demo", 60*time.Second, "waiting for the hook", func(a *berthv1.Application) bool {
		r := condition(a, berthv1.ConditionReconciling)
		return r != nil && r.Reason == "PreSyncHook"
	})
	// The Job runs: its pod is Running for as long as we look.
	for deadline := time.Now().Add(6 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if g := f.greeting(); g != "v1" {
			t.Fatalf("greeting = %q while the pre-sync hook still runs", g)
		}
	}
	if rels := f.releases("demo"); len(rels) != 1 {
		t.Errorf("releases = %s, want only the first", releaseSummary(rels))
	}
	var jobs batchv1.JobList
	must(t, f.c.List(context.Background(), &jobs, client.InNamespace(f.ns)))
	started := false
	for _, j := range jobs.Items {
		if strings.HasPrefix(j.Name, "backup-") && j.Status.StartTime != nil && !jobComplete(&j) {
			started = true
		}
	}
	if !started {
		t.Fatal("no started, unfinished backup Job: the test does not test what it says")
	}
}

// Returning to a commit — a rollback, then an unpin that re-applies it —
// is a new move with new data behind it: the pre-sync hook runs again under
// a new snapshot ID instead of handing the new release the first run's
// snapshot (a later rollback would restore data older than what the
// rolled-back-to release wrote meanwhile).
func TestPreSyncHookRunsAgainWhenACommitReturns(t *testing.T) {
	f := newFixture(t)
	f.settingsApp()
	v2 := f.wt.Write("app/cm.yaml", cm("settings", "v2")).
		Write("app/backup.yaml", hook("backup", "pre-sync")).
		Write("app/restore.yaml", hook("restore", "restore")).CommitAndPush("v2 with a migration")
	f.waitApp("demo", 60*time.Second, "v2", appliedReady(v2))
	f.waitReleasesHealthy("demo", 2)

	key := types.NamespacedName{Namespace: f.ns, Name: "demo"}
	_, _, err := apps.RequestRollback(context.Background(), f.c, key, 1)
	must(t, err)
	f.waitApp("demo", 60*time.Second, "rolled back to release 1", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && ready(a) && a.Status.CurrentRelease == 3
	})
	if g := f.greeting(); g != "v1" {
		t.Fatalf("greeting = %q after the rollback", g)
	}
	must(t, apps.RequestUnpin(context.Background(), f.c, key))
	f.waitApp("demo", 60*time.Second, "v2 again", func(a *berthv1.Application) bool {
		return a.Status.Pin == nil && a.Status.CurrentRelease == 4 && appliedReady(v2)(a)
	})

	rels := f.releases("demo")
	if len(rels) != 4 {
		t.Fatalf("releases = %s", releaseSummary(rels))
	}
	first, again, rollback := rels[2].Spec.Snapshot, rels[0].Spec.Snapshot, rels[1]
	if first == nil || again == nil {
		t.Fatalf("snapshots of releases 2 and 4 = %+v, %+v", first, again)
	}
	if again.ID == first.ID || again.Job == first.Job {
		t.Fatalf("release 4 reuses release 2's snapshot %s (Job %s): the data written under release 3 was not backed up", again.ID, again.Job)
	}
	var backup batchv1.Job
	if !f.get(&backup, again.Job) || !jobComplete(&backup) || jobEnv(&backup, "BERTH_SNAPSHOT") != again.ID || jobEnv(&backup, "BERTH_COMMIT") != v2 {
		t.Fatalf("pre-sync Job %s: complete=%v env=%v", again.Job, jobComplete(&backup), backup.Spec.Template.Spec.Containers[0].Env)
	}
	if backup.CreationTimestamp.Before(&rollback.CreationTimestamp) {
		t.Errorf("release 4's backup Job was created at %v, before the rollback (release 3, %v)", backup.CreationTimestamp, rollback.CreationTimestamp)
	}
	if rels[2].Status.Restored == nil || rels[2].Status.Restored.Snapshot != first.ID {
		t.Errorf("release 2 restored = %+v, want its snapshot %s restored by the rollback", rels[2].Status.Restored, first.ID)
	}
}

// Hook Jobs go with the releases they served: when the history is trimmed,
// the backup Job of the release trimmed away is deleted (as the
// Application's service account) and the kept releases' Jobs stay.
func TestTrimmedReleasesTakeTheirHookJobs(t *testing.T) {
	f := newFixture(t)
	f.hookedSettingsApp(func(a *berthv1.Application) { a.Spec.Rollback.HistoryLimit = 2 })
	jobOf := map[int64]string{}
	for i, g := range []string{"v2", "v3"} {
		sha := f.wt.Write("app/cm.yaml", cm("settings", g)).CommitAndPush(g)
		f.waitApp("demo", 60*time.Second, g, func(a *berthv1.Application) bool {
			return appliedReady(sha)(a) && a.Status.CurrentRelease == int64(i+2)
		})
		for _, rel := range f.releases("demo") {
			if s := rel.Spec.Snapshot; s != nil {
				jobOf[rel.Spec.Number] = s.Job
			}
		}
	}
	if len(jobOf) != 3 || jobOf[1] == jobOf[2] || jobOf[2] == jobOf[3] {
		t.Fatalf("backup Jobs by release = %v, want one per release", jobOf)
	}
	rels := f.releases("demo")
	if len(rels) != 2 || rels[0].Spec.Number != 3 || rels[1].Spec.Number != 2 {
		t.Fatalf("releases = %s, want 3 and 2", releaseSummary(rels))
	}
	gone := func(name string) bool {
		var j batchv1.Job
		return !f.get(&j, name) || j.DeletionTimestamp != nil
	}
	f.waitApp("demo", 30*time.Second, "release 1's backup Job deleted", func(*berthv1.Application) bool { return gone(jobOf[1]) })
	for _, n := range []int64{2, 3} {
		if gone(jobOf[n]) {
			t.Errorf("backup Job %s of kept release %d was deleted", jobOf[n], n)
		}
	}
}
