package agent_test

import (
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// ttlJob is a Job the cluster removes once it finished.
func ttlJob(name string) string {
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %s
spec:
  ttlSecondsAfterFinished: 3
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: example.test/migrate:1
`, name)
}

// A Job with ttlSecondsAfterFinished runs once per revision: completed
// and removed by the cluster (the sandbox's pods of a Job succeed, and its
// TTL controller removes the Job 3 s later), it is not re-created by a
// drift heal, nor reported missing (which would fail the release); a new
// revision runs it again.
func TestAJobRemovedPastItsTTLIsNotRunAgain(t *testing.T) {
	f := newFixture(t)
	sha := f.wt.Write("heal/job.yaml", ttlJob("migrate-heal")).Write("heal/cm.yaml", cm("heal-settings", "v1")).
		Write("detect/job.yaml", ttlJob("migrate-detect")).Write("detect/cm.yaml", cm("detect-settings", "v1")).
		CommitAndPush("jobs")
	f.createApp("heal", "heal")
	f.createApp("detect", "detect", func(a *berthv1.Application) { a.Spec.SyncPolicy.Drift = berthv1.DriftDetect })
	f.waitApp("heal", 60*time.Second, "applied", appliedReady(sha))
	f.waitApp("detect", 60*time.Second, "applied", appliedReady(sha))

	// The cluster completes and removes both Jobs.
	for deadline := time.Now().Add(90 * time.Second); f.get(&batchv1.Job{}, "migrate-heal") || f.get(&batchv1.Job{}, "migrate-detect"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the Jobs were not completed and removed past their TTL within 90s")
		}
	}
	// Polls, watch events and heals for a while: no Job comes back.
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		for _, app := range []string{"heal", "detect"} {
			var j batchv1.Job
			if f.get(&j, "migrate-"+app) {
				t.Fatalf("Job migrate-%s was created again (at %s) for the revision it ran for", app, j.CreationTimestamp)
			}
		}
	}
	for _, app := range []string{"heal", "detect"} {
		a := f.waitApp(app, 10*time.Second, "Ready", func(*berthv1.Application) bool { return true })
		if !ready(a) || a.Status.Health != "Healthy" {
			t.Errorf("%s after its Job was removed: %s", app, describeStatus(a))
		}
		if d := condition(a, berthv1.ConditionDrifted); d != nil && d.Status == metav1.ConditionTrue {
			t.Errorf("%s reports drift: %s", app, d.Message)
		}
	}

	// A new revision runs it again.
	f.wt.Write("heal/cm.yaml", cm("heal-settings", "v2")).CommitAndPush("v2")
	for deadline := time.Now().Add(60 * time.Second); !f.get(&batchv1.Job{}, "migrate-heal"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a new revision did not run the Job again within 60s")
		}
	}
}
