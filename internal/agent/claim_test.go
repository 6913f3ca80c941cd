package agent_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// Two Applications declaring one object used to apply it in turn, each
// undoing the other (one field manager for both). The second is refused,
// whole, until the first no longer declares it; then it takes it over.
func TestObjectDeclaredByTwoApplicationsIsRefused(t *testing.T) {
	f := newFixture(t)
	v1 := f.wt.Write("first/shared.yaml", cm("shared", "first")).
		Write("first/own.yaml", cm("first-own", "ex")).CommitAndPush("first")
	f.createApp("first", "first")
	f.waitApp("first", 60*time.Second, "first applied", appliedReady(v1))

	v2 := f.wt.Write("second/shared.yaml", cm("shared", "second")).
		Write("second/own.yaml", cm("second-own", "why")).CommitAndPush("second")
	f.createApp("second", "second")
	if msg := f.waitRejected("second", v2, "ObjectClaimed"); !strings.Contains(msg, "ConfigMap") || !strings.Contains(msg, f.ns+"/first") {
		t.Errorf("Stalled message %q does not name the ConfigMap and Application %s/first", msg, f.ns)
	}
	var got corev1.ConfigMap
	if !f.get(&got, "shared") || got.Data["greeting"] != "first" || got.Labels[berthv1.OwnerNameLabel] != "first" {
		t.Errorf("shared = %v %v, want first's", got.Data, got.Labels)
	}
	if f.get(&corev1.ConfigMap{}, "second-own") {
		t.Error("part of the refused revision was applied")
	}
	// berth diff says what the agent says: no change shown for an object
	// the sync would refuse.
	if code, out, errOut := f.berth("diff", "second"); code != 2 || !strings.Contains(errOut, f.ns+"/first") || strings.Contains(out, "shared") {
		t.Errorf("berth diff second: exit %d, stdout %q, stderr %q; want 2 naming Application first", code, out, errOut)
	}
	// first keeps its own object and stays Ready.
	f.waitApp("first", 30*time.Second, "first still Ready", appliedReady(v2))

	// The object moves: first drops it, keeping it in the cluster
	// (berth.dev/prune: "false" would too; here first's last revision
	// marks it), and second takes it over.
	v3 := f.wt.Write("first/shared.yaml", strings.Replace(cm("shared", "first"), "  name: shared\n", "  name: shared\n  annotations: {berth.dev/prune: \"false\"}\n", 1)).CommitAndPush("keep on removal")
	f.waitApp("first", 60*time.Second, "first marks shared kept", appliedReady(v3))
	v4 := f.wt.Remove("first/shared.yaml").CommitAndPush("move shared to second")
	f.waitApp("first", 60*time.Second, "first without shared", appliedReady(v4))
	app := f.waitApp("second", 60*time.Second, "second takes shared over", appliedReady(v4))
	if !f.get(&got, "shared") || got.Data["greeting"] != "second" || got.Labels[berthv1.OwnerNameLabel] != "second" {
		t.Errorf("shared = %v %v, want second's", got.Data, got.Labels)
	}
	if len(app.Status.Inventory) != 2 {
		t.Errorf("second's inventory = %v", app.Status.Inventory)
	}
}
