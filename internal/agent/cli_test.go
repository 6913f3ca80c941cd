package agent_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/apps"
	"github.com/berth-dev/berth/internal/testenv"
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

// `berth diff` compares with the cluster what the agent would apply, not
// the raw render: image tags pinned to the digests the agent pinned them
// to, hook Jobs left out (they run under names of their own), and a prune
// list that follows the prune's rules. An Application in sync shows no
// change; a commit dropping a claim and a ConfigMap prunes only the
// ConfigMap.
func TestDiffComparesWhatTheAgentApplies(t *testing.T) {
	f := newFixture(t)
	reg := testenv.NewRegistry(t)
	image := reg.Host + "/team/web:1"
	push(t, image)
	v1 := f.wt.Write("app/deploy.yaml", strings.Replace(deploy("1"), "example.test/web:1", image, 1)).
		Write("app/backup.yaml", hook("backup", "pre-sync")).
		Write("app/pvc.yaml", strings.Replace(pvc, "%s", f.persistentVolume(), 1)).
		Write("app/old.yaml", cm("old", "x")).CommitAndPush("v1")
	policyJSON := `{"images":{"insecureRegistries":["` + reg.Host + `"]}}`
	f.createApp("demo", "app", func(a *berthv1.Application) {
		a.Spec.Policy = &runtime.RawExtension{Raw: []byte(policyJSON)}
		a.Spec.Source.Interval = &metav1.Duration{Duration: time.Hour}
	})
	app := f.waitApp("demo", 60*time.Second, "v1", appliedReady(v1))
	if len(app.Status.Images) != 1 {
		t.Fatalf("status images = %+v, want the pinned image", app.Status.Images)
	}
	ctx := context.Background()
	key := types.NamespacedName{Namespace: f.ns, Name: "demo"}
	d, err := apps.Diff(ctx, f.c, f.env.Config, key)
	must(t, err)
	if out := apply.FormatDiffs(d.Objects); out != "" || len(d.Prune) != 0 {
		t.Errorf("diff of an Application in sync:\n%s\nprune %v; want nothing", out, d.Prune)
	}
	code, _, stderr := f.berth("diff", "demo")
	if code != 0 || !strings.Contains(stderr, "no changes") {
		t.Errorf("berth diff of an Application in sync: exit %d, stderr %q; want 0, no changes", code, stderr)
	}

	f.wt.Remove("app/pvc.yaml").Remove("app/old.yaml").CommitAndPush("v2")
	d, err = apps.Diff(ctx, f.c, f.env.Config, key)
	must(t, err)
	if len(d.Prune) != 1 || !strings.Contains(d.Prune[0], "ConfigMap") || !strings.Contains(d.Prune[0], "/old") {
		t.Errorf("prune = %v, want only the ConfigMap", d.Prune)
	}
	if len(d.Kept) != 1 || !strings.Contains(d.Kept[0], "PersistentVolumeClaim") || !strings.Contains(d.Kept[0], "holds data") {
		t.Errorf("kept = %v, want the claim, saying why", d.Kept)
	}
	code, stdout, stderr := f.berth("diff", "demo")
	if code != 1 || !strings.Contains(stdout, "/old") || strings.Contains(stdout, "PersistentVolumeClaim") || !strings.Contains(stderr, "kept, though removed from Git") {
		t.Errorf("berth diff after v2: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// `berth sync` of a revision the agent refuses ends with the refusal, not
// after its timeout: the refusal answers the request, whichever step
// refused (here the render, before any apply).
func TestSyncOfARefusedRevisionSaysWhy(t *testing.T) {
	f := newFixture(t)
	v1 := f.wt.Write("app/cm.yaml", cm("settings", "v1")).CommitAndPush("v1")
	off := false
	f.createApp("demo", "app", func(a *berthv1.Application) { a.Spec.SyncPolicy.Automated = &off })
	f.waitApp("demo", 30*time.Second, "awaiting a manual sync", func(a *berthv1.Application) bool {
		return a.Status.LastFetchedRevision == v1
	})
	v2 := f.wt.Write("app/kustomization.yaml", "resources: [missing.yaml]\n").CommitAndPush("broken overlay")
	f.waitApp("demo", 30*time.Second, "the broken commit fetched", func(a *berthv1.Application) bool {
		return a.Status.LastFetchedRevision == v2
	})
	code, stdout, stderr := f.berth("sync", "demo", "--timeout", "90s")
	if code == 0 || !strings.Contains(stderr, "RenderFailed") && !strings.Contains(stderr, "rejected") || strings.Contains(stderr, "deadline") {
		t.Errorf("berth sync of a broken revision: exit %d\nstdout: %s\nstderr: %s\nwant the refusal, not a timeout", code, stdout, stderr)
	}
	if f.get(&corev1.ConfigMap{}, "settings") {
		t.Error("a refused revision was applied")
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// `berth get apps -w` outlives the API server's end of its watch (each
// ends after a while): it watches again and keeps printing. Here the
// server ends every watch after a second.
func TestWatchOutlivesTheServersEndOfIt(t *testing.T) {
	f := newFixture(t, fixtureOptions{noAgent: true})
	wc, err := client.NewWithWatch(f.env.Config, client.Options{Scheme: agent.Scheme()})
	must(t, err)
	apps.WatchTimeout = time.Second
	defer func() { apps.WatchTimeout = 0 }()
	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan error, 1)
	go func() { done <- apps.Watch(ctx, wc, f.ns, &out, false) }()
	f.createApp("first", "app")
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "first"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the watch never showed Application first:\n%s", out.String())
		}
	}
	time.Sleep(3 * time.Second) // the server ended the first watch, and the next ones
	select {
	case err := <-done:
		t.Fatalf("the watch returned (%v) when the server ended it", err)
	default:
	}
	f.createApp("second", "app")
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "second"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Application second, created after the server ended the first watch, never showed:\n%s", out.String())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("watch ended with %v when its context did", err)
	}
}
