package agent_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apps"
)

// freezeReleases makes the API server refuse new Releases in the fixture's
// namespace (a ValidatingAdmissionPolicy) and returns a function that
// lifts the freeze.
func freezeReleases(t *testing.T, f *fixture) (thaw func()) {
	t.Helper()
	return freezeReleasesOf(t, f, berthv1.TriggerCommit, "")
}

// freezeReleasesOf freezes only the Releases whose spec.trigger is
// trigger, or every Release when trigger is "" (probe is the trigger of
// the dry-run Release that checks the freeze is in force).
func freezeReleasesOf(t *testing.T, f *fixture, probe, trigger string) (thaw func()) {
	t.Helper()
	cond := ""
	if trigger != "" {
		cond = "object.spec.trigger == '" + trigger + "'"
	}
	probeRel := &berthv1.Release{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: f.ns},
		Spec: berthv1.ReleaseSpec{Application: "probe", Number: 1, Commit: "0", Digest: "sha256:0", Trigger: probe,
			Manifests: []berthv1.ManifestChunk{{SecretName: "probe-m0"}}}}
	return freeze(t, f, admissionv1.Create, cond, func(ctx context.Context) error {
		return f.c.Create(ctx, probeRel.DeepCopy(), &client.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	})
}

// freezeReleaseDeletes makes the API server refuse to delete Releases in
// the fixture's namespace; existing names a Release to probe with.
func freezeReleaseDeletes(t *testing.T, f *fixture, existing string) (thaw func()) {
	t.Helper()
	return freeze(t, f, admissionv1.Delete, "", func(ctx context.Context) error {
		rel := &berthv1.Release{ObjectMeta: metav1.ObjectMeta{Name: existing, Namespace: f.ns}}
		return f.c.Delete(ctx, rel, &client.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
	})
}

// freeze makes the API server refuse op on Releases in the fixture's
// namespace that match cond (a CEL match condition, "" for all), and
// returns a function that lifts it. It returns once probe fails with the
// freeze's message.
func freeze(t *testing.T, f *fixture, op admissionv1.OperationType, cond string, probe func(context.Context) error) (thaw func()) {
	t.Helper()
	ctx := context.Background()
	name := "freeze-releases-" + strings.ToLower(string(op)) + "-" + f.ns
	conditions := []admissionv1.MatchCondition{{Name: "namespace", Expression: "request.namespace == '" + f.ns + "'"}}
	if cond != "" {
		conditions = append(conditions, admissionv1.MatchCondition{Name: "selected", Expression: cond})
	}
	fail := admissionv1.Fail
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{op},
					Rule:       admissionv1.Rule{APIGroups: []string{"berth.dev"}, APIVersions: []string{"*"}, Resources: []string{"releases"}},
				},
			}}},
			MatchConditions: conditions,
			Validations:     []admissionv1.Validation{{Expression: "false", Message: "releases are frozen in this namespace"}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name, ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny}},
	}
	must(t, f.c.Create(ctx, policy))
	must(t, f.c.Create(ctx, binding))
	thaw = func() {
		_ = f.c.Delete(context.Background(), binding)
		_ = f.c.Delete(context.Background(), policy)
	}
	t.Cleanup(thaw)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := probe(ctx)
		if err != nil && strings.Contains(err.Error(), "frozen") {
			return thaw
		}
		if time.Now().After(deadline) {
			t.Fatalf("the freeze never took effect: %v", err)
		}
	}
}

// A revision whose release cannot be recorded is not reported Ready: the
// app says why, keeps the old revision as its last applied one, and the
// record is retried until it lands.
func TestReleaseThatCannotBeRecordedKeepsTheAppNotReady(t *testing.T) {
	f := newFixture(t)
	v1 := f.settingsApp()
	thaw := freezeReleases(t, f)

	v2 := f.wt.Write("app/cm.yaml", cm("settings", "v2")).Write("app/backup.yaml", hook("backup", "pre-sync")).CommitAndPush("v2 with a backup")
	app := f.waitApp("demo", 60*time.Second, "release not recorded", func(a *berthv1.Application) bool {
		r := condition(a, berthv1.ConditionReady)
		return r != nil && r.Reason == "ReleaseNotRecorded"
	})
	if msg := condition(app, berthv1.ConditionReady).Message; !strings.Contains(msg, "frozen") || app.Status.LastAppliedRevision != v1 {
		t.Fatalf("Ready message %q, last applied %s (want the reason, and still %s)", msg, app.Status.LastAppliedRevision, v1)
	}
	// The backup ran before the apply. Its Job goes away (a TTL, a
	// clean-up): the retries must not back up the migrated data again.
	backups := func() []string {
		var jobs batchv1.JobList
		must(t, f.c.List(context.Background(), &jobs, client.InNamespace(f.ns)))
		var names []string
		for _, j := range jobs.Items {
			if strings.HasPrefix(j.Name, "backup-") && j.DeletionTimestamp == nil {
				names = append(names, j.Name)
			}
		}
		return names
	}
	ran := backups()
	if len(ran) != 1 {
		t.Fatalf("backup Jobs = %v, want the one pre-sync run", ran)
	}
	bg := metav1.DeletePropagationBackground
	must(t, f.c.Delete(context.Background(), &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: ran[0], Namespace: f.ns}}, &client.DeleteOptions{PropagationPolicy: &bg}))

	// Several passes later it is still not Ready, and took no new backup.
	time.Sleep(12 * time.Second)
	f.waitApp("demo", time.Second, "still not Ready", func(a *berthv1.Application) bool { return !ready(a) && a.Status.LastAppliedRevision == v1 })
	if again := backups(); len(again) != 0 {
		t.Fatalf("the retry ran the backup again: %v", again)
	}

	thaw()
	f.waitApp("demo", 60*time.Second, "v2 recorded and Ready", appliedReady(v2))
	rels := f.releases("demo")
	if len(rels) != 2 || rels[0].Spec.Commit != v2 {
		t.Fatalf("releases = %s, want release 2 for %s", releaseSummary(rels), v2)
	}
	if snap := rels[0].Spec.Snapshot; snap == nil || snap.Job != ran[0] {
		t.Fatalf("release 2 snapshot = %+v, want the backup that ran before the apply (%s)", snap, ran[0])
	}
	if again := backups(); len(again) != 0 {
		t.Fatalf("recording the release ran the backup again: %v", again)
	}
	if g := f.greeting(); g != "v2" {
		t.Errorf("greeting = %q", g)
	}
}

// unrecordedV2 sets up the hooked settings app, freezes the records of
// commits, pushes v2 and waits until v2 is applied after its backup but
// not recorded (in status too). It returns v2, its backup Job, and thaw.
func (f *fixture) unrecordedV2() (v2, backup string, thaw func()) {
	t := f.t
	t.Helper()
	f.hookedSettingsApp()
	f.waitReleasesHealthy("demo", 1)
	thaw = freezeReleasesOf(t, f, berthv1.TriggerCommit, berthv1.TriggerCommit) // a rollback could record itself
	v2 = f.wt.Write("app/cm.yaml", cm("settings", "v2")).CommitAndPush("v2")
	f.waitApp("demo", 60*time.Second, "v2 applied, not recorded, in status", func(a *berthv1.Application) bool {
		r := condition(a, berthv1.ConditionReady)
		u := a.Status.UnrecordedSync
		return r != nil && r.Reason == "ReleaseNotRecorded" && u != nil && u.Commit == v2 && u.FromRelease == 1
	})
	jobs := f.hookJobs("backup-" + v2[:8])
	if len(jobs) != 1 {
		t.Fatalf("backup Jobs of v2 = %v, want one", jobs)
	}
	return v2, jobs[0], thaw
}

// A later revision whose record fails too, with no pre-sync hook of its
// own, keeps the snapshot of the first: that revision's data changes are
// still live and unrecorded, and a rollback is still refused.
func TestUnrecordedSnapshotOutlivesAHooklessRevision(t *testing.T) {
	f := newFixture(t)
	_, backup, _ := f.unrecordedV2()
	v3 := f.wt.Remove("app/backup.yaml").Write("app/cm.yaml", cm("settings", "v3")).CommitAndPush("v3, no pre-sync hook")
	app := f.waitApp("demo", 60*time.Second, "v3 applied, not recorded", func(a *berthv1.Application) bool {
		u := a.Status.UnrecordedSync
		return u != nil && u.Commit == v3
	})
	if snap := app.Status.UnrecordedSync.Snapshot; snap.Job != backup {
		t.Fatalf("unrecorded snapshot = %+v, want v2's backup %s kept", snap, backup)
	}
	key := types.NamespacedName{Namespace: f.ns, Name: "demo"}
	_, token, err := apps.RequestRollback(context.Background(), f.c, key, 1)
	must(t, err)
	if refusal := f.waitEvent("demo", "RollbackRefused"); !strings.Contains(refusal, "could not be recorded yet") || !strings.Contains(refusal, backup) {
		t.Fatalf("RollbackRefused event = %q, want v2's backup named", refusal)
	}
	// `berth rollback` hears the refusal (and exits 2, pushing nothing to
	// Git with --revert-in-git).
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = apps.WaitRollback(wctx, f.c, key, token)
	if refused, ok := errors.AsType[*apps.RollbackRefusedError](err); !ok || !strings.Contains(refused.Message, "could not be recorded yet") {
		t.Fatalf("WaitRollback = %v, want the agent's refusal", err)
	}
	code, out, errOut := f.berth("rollback", "demo", "--to", "1", "--timeout", "30s")
	if code != 2 || !strings.Contains(errOut, "the agent refused the rollback") || !strings.Contains(errOut, "could not be recorded yet") {
		t.Fatalf("berth rollback: exit %d, stdout %q, stderr %q; want 2 and the agent's refusal", code, out, errOut)
	}
}

// A revision applied after its pre-sync hook whose release cannot be
// recorded has its data changes live, and no release says so: a rollback
// then would cross nothing and restore nothing. It is refused, saying why,
// also by an agent restarted before the record lands (the rollback, asked
// while no agent ran, is the first thing the new one handles); once the
// record lands the same rollback restores that revision's backup with its
// restore hook.
func TestRollbackWhileARevisionIsUnrecordedIsRefused(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "same agent"
		if restart {
			name = "restarted agent"
		}
		t.Run(name, func(t *testing.T) { rollbackWhileUnrecorded(t, restart) })
	}
}

func rollbackWhileUnrecorded(t *testing.T, restart bool) {
	f := newFixture(t)
	v2, backup, thaw := f.unrecordedV2()
	key := types.NamespacedName{Namespace: f.ns, Name: "demo"}
	if restart {
		f.stopAgent(0)
	}
	_, _, err := apps.RequestRollback(context.Background(), f.c, key, 1)
	must(t, err)
	if restart {
		f.startAgent(false, nil)
	}
	if refusal := f.waitEvent("demo", "RollbackRefused"); !strings.Contains(refusal, "could not be recorded yet") || !strings.Contains(refusal, backup) {
		t.Fatalf("RollbackRefused event = %q, want the unrecorded revision and its backup named", refusal)
	}
	if g := f.greeting(); g != "v2" {
		t.Errorf("greeting = %q: the refused rollback changed the app", g)
	}
	if got := f.hookJobs("restore-"); len(got) != 0 {
		t.Errorf("restore Jobs = %v after a refused rollback", got)
	}

	// Recorded, the same rollback crosses release 2 and restores its backup.
	thaw()
	f.waitApp("demo", 60*time.Second, "v2 recorded", func(a *berthv1.Application) bool {
		return a.Status.CurrentRelease == 2 && appliedReady(v2)(a)
	})
	rels := f.releases("demo")
	if snap := rels[0].Spec.Snapshot; snap == nil || snap.Job != backup {
		t.Fatalf("release 2 snapshot = %+v, want the backup that ran before the apply (%s)", snap, backup)
	}
	_, _, err = apps.RequestRollback(context.Background(), f.c, key, 1)
	must(t, err)
	f.waitApp("demo", 60*time.Second, "rolled back to release 1", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.CurrentRelease == 3 && ready(a)
	})
	restores := f.hookJobs("restore-")
	if len(restores) != 1 {
		t.Fatalf("restore Jobs = %v, want the one restoring v2's backup", restores)
	}
	var rj batchv1.Job
	f.get(&rj, restores[0])
	if want := rels[0].Spec.Snapshot.ID; jobEnv(&rj, "BERTH_SNAPSHOT") != want {
		t.Errorf("restore Job %s restores %q, want %q", rj.Name, jobEnv(&rj, "BERTH_SNAPSHOT"), want)
	}
	if g := f.greeting(); g != "v1" {
		t.Errorf("greeting = %q after the rollback", g)
	}
}
