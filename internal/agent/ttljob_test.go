package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// ttlJob is a Job the cluster removes once it finished.
func ttlJob(name string) string {
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %s
spec:
  ttlSecondsAfterFinished: 30
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: example.test/migrate:1
`, name)
}

// A Job with ttlSecondsAfterFinished runs once per revision: removed by
// the cluster (here by hand, as the TTL controller would), it is not
// re-created by a drift heal, nor reported missing (which would fail the
// release); a new revision runs it again.
func TestAJobRemovedPastItsTTLIsNotRunAgain(t *testing.T) {
	f := newFixture(t)
	sha := f.wt.Write("heal/job.yaml", ttlJob("migrate-heal")).Write("heal/cm.yaml", cm("heal-settings", "v1")).
		Write("detect/job.yaml", ttlJob("migrate-detect")).Write("detect/cm.yaml", cm("detect-settings", "v1")).
		CommitAndPush("jobs")
	f.createApp("heal", "heal")
	f.createApp("detect", "detect", func(a *berthv1.Application) { a.Spec.SyncPolicy.Drift = berthv1.DriftDetect })
	f.waitApp("heal", 60*time.Second, "applied", appliedReady(sha))
	f.waitApp("detect", 60*time.Second, "applied", appliedReady(sha))

	for _, name := range []string{"migrate-heal", "migrate-detect"} {
		var j batchv1.Job
		if !f.get(&j, name) {
			t.Fatalf("Job %s was not created", name)
		}
		bg := metav1.DeletePropagationBackground
		must(t, f.c.Delete(context.Background(), &j, &client.DeleteOptions{PropagationPolicy: &bg}))
	}
	// Three polls, and the watch events of the deletions.
	time.Sleep(7 * time.Second)
	for _, app := range []string{"heal", "detect"} {
		var j batchv1.Job
		if f.get(&j, "migrate-"+app) {
			t.Errorf("Job migrate-%s was created again (at %s) for the revision it ran for", app, j.CreationTimestamp)
		}
		a := f.waitApp(app, 10*time.Second, "Ready", func(*berthv1.Application) bool { return true })
		if !ready(a) || a.Status.Health != "Healthy" {
			t.Errorf("%s after its Job was removed: %s", app, describeStatus(a))
		}
		if d := condition(a, berthv1.ConditionDrifted); d != nil && d.Status == metav1.ConditionTrue {
			t.Errorf("%s reports drift: %s", app, d.Message)
		}
	}

	// A new revision runs it again.
	next := f.wt.Write("heal/cm.yaml", cm("heal-settings", "v2")).CommitAndPush("v2")
	f.waitApp("heal", 60*time.Second, "v2 applied", appliedReady(next))
	var j batchv1.Job
	if !f.get(&j, "migrate-heal") {
		t.Error("a new revision did not run the Job again")
	}
}
