package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

const statefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 1
  podManagementPolicy: Parallel
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: example.test/db:%s
`

func sts(tag string) string { return strings.Replace(statefulSet, "%s", tag, 1) }

// With rollback.statefulSets: Retry a failed release that runs a
// StatefulSet is retried, never rolled back; when the retries run out the
// Application stops with Stalled, and a fix in Git still goes through.
func TestStatefulSetRetriesInsteadOfRollingBack(t *testing.T) {
	f := newFixture(t)
	good := f.wt.Write("app/db.yaml", sts("1")).CommitAndPush("db v1")
	f.createApp("db", "app", func(a *berthv1.Application) {
		a.Spec.Rollback.StatefulSets = berthv1.StatefulSetRetry
		a.Spec.Rollback.Retries = 2
		a.Spec.HealthTimeout = &metav1.Duration{Duration: 3 * time.Second}
	})
	f.waitApp("db", 60*time.Second, "v1 healthy", appliedReady(good))
	f.wt.Write("app/db.yaml", sts("2-never-ready")).CommitAndPush("db v2")
	app := f.waitApp("db", 90*time.Second, "retries exhausted", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Status == "True" && s.Reason == "RetriesExhausted"
	})
	if msg := condition(app, berthv1.ConditionStalled).Message; !strings.Contains(msg, "after 2 retries") || !strings.Contains(msg, "not rolled back") {
		t.Errorf("Stalled message = %q", msg)
	}
	if app.Status.Pin != nil {
		t.Errorf("pinned: %+v", app.Status.Pin)
	}
	rels := f.releases("db")
	if len(rels) != 2 || rels[0].Status.Health != berthv1.ReleaseFailed || rels[0].Status.Retries != 2 {
		t.Fatalf("releases = %s (retries %d), want release 2 Failed after 2 retries and no rollback", releaseSummary(rels), rels[0].Status.Retries)
	}
	var s appsv1.StatefulSet
	f.get(&s, "db")
	if img := s.Spec.Template.Spec.Containers[0].Image; img != "example.test/db:2-never-ready" {
		t.Errorf("StatefulSet image = %q: it was rolled back", img)
	}
	var evs corev1.EventList
	must(t, f.c.List(context.Background(), &evs, client.InNamespace(f.ns)))
	retries := 0
	for _, e := range evs.Items {
		if e.Reason == "RetryingRelease" && e.InvolvedObject.Name == "db" {
			retries += int(max(e.Count, 1))
		}
	}
	if retries != 2 {
		t.Errorf("RetryingRelease events = %d, want 2", retries)
	}

	fixed := f.wt.Write("app/db.yaml", sts("3")).CommitAndPush("db v3")
	f.waitApp("db", 60*time.Second, "fix applied", appliedReady(fixed))
}
