package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

func service(name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\nspec:\n  ports:\n  - port: 80\n", name)
}

// A revision whose apply fails part-way (each object passes its dry run;
// a quota refuses the second real write) keeps what it wrote in the
// inventory: reverting the commit prunes it instead of leaving it behind,
// unwatched and unowned.
func TestPartlyAppliedRevisionIsPrunedAfterARevert(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v1 := f.wt.Write("app/cm.yaml", cm("settings", "v1")).CommitAndPush("v1")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "v1", appliedReady(v1))

	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "one-service", Namespace: f.ns},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceServices: resource.MustParse("1")}}}
	must(t, f.c.Create(ctx, quota))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		must(t, f.c.Get(ctx, client.ObjectKeyFromObject(quota), quota))
		if _, ok := quota.Status.Hard[corev1.ResourceServices]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the quota controller never counted the namespace")
		}
	}
	bad := f.wt.Write("app/svc.yaml", service("first")+"---\n"+service("second")).CommitAndPush("two services, room for one")
	app := f.waitApp("demo", 60*time.Second, "the apply failed part-way", func(a *berthv1.Application) bool {
		if a.Status.LastFetchedRevision != bad || a.Status.LastAppliedRevision == bad {
			return false
		}
		for _, r := range a.Status.Inventory {
			if r.Kind == "Service" {
				return true
			}
		}
		return false
	})
	if msg := condition(app, berthv1.ConditionReady).Message; !strings.Contains(msg, "quota exceeded") || strings.Contains(msg, "permission denied") {
		t.Errorf("Ready message %q: want a quota named, not a permission", msg)
	}
	var written string
	for _, r := range app.Status.Inventory {
		if r.Kind == "Service" {
			written = r.Name
		}
	}
	if !f.get(&corev1.Service{}, written) {
		t.Fatalf("inventory holds Service %s, which does not exist", written)
	}

	reverted := f.wt.Remove("app/svc.yaml").CommitAndPush("revert")
	f.waitApp("demo", 60*time.Second, "the revert applied", appliedReady(reverted))
	if f.get(&corev1.Service{}, written) {
		t.Errorf("Service %s, written by the failed apply, was left behind by the revert", written)
	}
}
