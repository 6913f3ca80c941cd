package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/apps"
)

// TestManualSyncAndDiff covers what `berth diff` and `berth sync` do with an
// Application whose automated sync is off.
func TestManualSyncAndDiff(t *testing.T) {
	f := newFixture(t)
	v1 := f.wt.Write("app/cm.yaml", cm("settings", "v1")).Write("app/old.yaml", cm("old", "x")).CommitAndPush("v1")
	off := false
	f.createApp("demo", "app", func(a *berthv1.Application) { a.Spec.SyncPolicy.Automated = &off })
	app := f.waitApp("demo", 30*time.Second, "awaiting a manual sync", func(a *berthv1.Application) bool {
		c := condition(a, berthv1.ConditionReconciling)
		return a.Status.LastFetchedRevision == v1 && c != nil && c.Reason == "AwaitingSync"
	})
	if app.Status.Sync != "OutOfSync" || f.get(&corev1.ConfigMap{}, "settings") {
		t.Fatalf("automated sync is off but something was applied: %s", describeStatus(app))
	}
	ctx := context.Background()
	key := types.NamespacedName{Namespace: f.ns, Name: "demo"}
	token, err := apps.RequestSync(ctx, f.c, key)
	must(t, err)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := apps.WaitSync(wctx, f.c, key, token); err != nil {
		t.Fatalf("sync: %v", err)
	}
	var c corev1.ConfigMap
	if !f.get(&c, "settings") || c.Data["greeting"] != "v1" {
		t.Fatalf("after sync: %v", c.Data)
	}

	// A new commit is not applied; berth diff shows it, prune included.
	v2 := f.wt.Write("app/cm.yaml", cm("settings", "v2")).Remove("app/old.yaml").CommitAndPush("v2")
	d, err := apps.Diff(ctx, f.c, f.env.Config, key)
	must(t, err)
	out := apply.FormatDiffs(d.Objects)
	if !strings.Contains(out, "-  greeting: v1") || !strings.Contains(out, "+  greeting: v2") {
		t.Errorf("diff does not show the change:\n%s", out)
	}
	if len(d.Prune) != 1 || !strings.Contains(d.Prune[0], "/old") {
		t.Errorf("prune = %v, want the removed ConfigMap", d.Prune)
	}
	// Status says so, over the health of what runs.
	f.waitApp("demo", 30*time.Second, "v2 awaiting a manual sync", func(a *berthv1.Application) bool {
		c := condition(a, berthv1.ConditionReconciling)
		return a.Status.LastFetchedRevision == v2 && a.Status.Sync == "OutOfSync" && c != nil && c.Reason == "AwaitingSync" && strings.Contains(c.Message, "is not applied")
	})
	time.Sleep(3 * time.Second)
	f.get(&c, "settings")
	if c.Data["greeting"] != "v1" {
		t.Errorf("a commit was applied with automated sync off: %v", c.Data)
	}
}
