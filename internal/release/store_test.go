package release_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/release"
	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// bigApp renders n ConfigMaps of size bytes each with little redundancy,
// so compression cannot hide the size.
func bigApp(n, size int) []manifest.Object {
	var out []manifest.Object
	for i := range n {
		var b strings.Builder
		for b.Len() < size {
			s := sha256.Sum256([]byte(fmt.Sprintf("%d-%d", i, b.Len())))
			b.WriteString(hex.EncodeToString(s[:]))
		}
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": fmt.Sprintf("blob-%03d", i)},
			"data":     map[string]any{"blob": b.String()},
		}}
		out = append(out, manifest.Object{Object: u, Source: manifest.Source{File: "big.yaml"}})
	}
	return out
}

func setup(t *testing.T) (client.Client, *berthv1.Application) {
	t.Helper()
	env := testenv.Sandbox(t)
	testenv.InstallCRDs(t, env)
	c, err := client.New(env.Config, client.Options{Scheme: agent.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t)
	app := &berthv1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: ns},
		Spec:       berthv1.ApplicationSpec{Source: berthv1.GitSource{URL: "http://example.test/r.git"}, Namespace: ns},
	}
	if err := c.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	return c, app
}

func TestFiveMiBReleaseRoundTrips(t *testing.T) {
	c, app := setup(t)
	ctx := context.Background()
	s := &release.Store{Client: c}
	objs := bigApp(50, 105<<10) // ~5.1 MiB of YAML
	data, digest, err := release.Encode(objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 5<<20 {
		t.Fatalf("test app is %d bytes, want at least 5 MiB", len(data))
	}
	rel, err := s.Create(ctx, app, release.Input{Commit: strings.Repeat("a", 40), Trigger: berthv1.TriggerCommit, Renderer: "plain", Objects: objs})
	if err != nil {
		t.Fatalf("storing a 5 MiB release: %v", err)
	}
	if rel.Spec.Digest != digest || len(rel.Spec.Manifests) < 2 || rel.Status.Health != berthv1.ReleasePending {
		t.Fatalf("release = %+v (%d chunks), want digest %s and several chunks", rel.Spec.Digest, len(rel.Spec.Manifests), digest)
	}
	// Pending is the API server's default, not a second write.
	fresh, err := s.Get(ctx, app.Namespace, app.Name, rel.Spec.Number)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Status.Health != berthv1.ReleasePending || fresh.Status.Reason == "" || fresh.Status.AppliedAt != nil {
		t.Fatalf("stored status = %+v, want the defaulted Pending", fresh.Status)
	}
	if err := s.SetOutcome(ctx, fresh, berthv1.ReleaseHealthy, "ok"); err != nil {
		t.Fatal(err)
	}
	if fresh, err = s.Get(ctx, app.Namespace, app.Name, rel.Spec.Number); err != nil {
		t.Fatal(err)
	}
	if fresh.Status.Health != berthv1.ReleaseHealthy || fresh.Status.AppliedAt == nil || !fresh.Status.AppliedAt.Equal(&fresh.CreationTimestamp) {
		t.Fatalf("status after the verdict = %+v, want Healthy, applied at the creation", fresh.Status)
	}
	got, err := s.Manifests(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 || got[49].Object.GetName() != "blob-049" {
		t.Fatalf("read back %d objects", len(got))
	}

	// Tampering with the stored manifests makes them unusable.
	sec := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: app.Namespace, Name: rel.Spec.Manifests[0].SecretName}, sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["manifests.gz"][100] ^= 0xff
	if err := c.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Manifests(ctx, rel); !errors.Is(err, release.ErrDigestMismatch) {
		t.Errorf("tampered manifests: %v, want ErrDigestMismatch", err)
	}
}

func TestHistoryIsBoundedNewestFirst(t *testing.T) {
	c, app := setup(t)
	ctx := context.Background()
	app.Spec.Rollback.HistoryLimit = 3
	s := &release.Store{Client: c}
	for i := range 5 {
		if _, err := s.Create(ctx, app, release.Input{Commit: fmt.Sprintf("%040d", i), Trigger: berthv1.TriggerCommit, Objects: bigApp(1, 10)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := numbers(t, s, app); got != "[5 4 3]" {
		t.Errorf("releases kept = %v, want [5 4 3]", got)
	}
	// A lowered limit trims several at once, oldest first: a trim that
	// stops half-way keeps the newer releases.
	app.Spec.Rollback.HistoryLimit = 1
	var trimmed []int64
	s.Trimmed = func(r berthv1.Release) { trimmed = append(trimmed, r.Spec.Number) }
	if _, err := s.Create(ctx, app, release.Input{Commit: fmt.Sprintf("%040d", 6), Trigger: berthv1.TriggerCommit, Objects: bigApp(1, 10)}); err != nil {
		t.Fatal(err)
	}
	if got := numbers(t, s, app); got != "[6]" || fmt.Sprint(trimmed) != "[3 4 5]" {
		t.Errorf("releases kept = %v, trimmed in order %v; want [6] and [3 4 5]", got, trimmed)
	}
}

// Record numbers after the Application's current release, skips a sync
// that re-applies the current release, recovers when the status is behind
// the records, and still bounds the history.
func TestRecordNumbersFromStatusAndRecovers(t *testing.T) {
	c, app := setup(t)
	ctx := context.Background()
	app.Spec.Rollback.HistoryLimit = 3
	var trimmed []int64
	s := &release.Store{Client: c, Trimmed: func(r berthv1.Release) { trimmed = append(trimmed, r.Spec.Number) }}
	record := func(commit string) (*berthv1.Release, bool) {
		t.Helper()
		rel, created, err := s.Record(ctx, app, release.Input{Commit: commit, Trigger: berthv1.TriggerCommit, Objects: bigApp(1, 10)})
		if err != nil {
			t.Fatal(err)
		}
		return rel, created
	}
	c1 := fmt.Sprintf("%040d", 1)
	rel, created := record(c1)
	if !created || rel.Spec.Number != 1 {
		t.Fatalf("first = %d created=%v", rel.Spec.Number, created)
	}
	app.Status.CurrentRelease = 1
	if rel, created = record(c1); created || rel.Spec.Number != 1 {
		t.Fatalf("same commit and manifests = %d created=%v, want release 1 again", rel.Spec.Number, created)
	}
	// A status write lost after release 2 was recorded: the status still
	// says 1.
	record(fmt.Sprintf("%040d", 2))
	if rel, created = record(fmt.Sprintf("%040d", 3)); !created || rel.Spec.Number != 3 {
		t.Fatalf("with a stale status = %d created=%v, want 3", rel.Spec.Number, created)
	}
	app.Status.CurrentRelease = 3
	for i := 4; i <= 5; i++ {
		rel, _ = record(fmt.Sprintf("%040d", i))
		app.Status.CurrentRelease = rel.Spec.Number
	}
	if got := numbers(t, s, app); got != "[5 4 3]" {
		t.Errorf("releases kept = %v, want [5 4 3]", got)
	}
	if fmt.Sprint(trimmed) != "[1 2]" {
		t.Errorf("trimmed releases reported = %v, want [1 2]", trimmed)
	}
}

// numbers lists app's release numbers, newest first.
func numbers(t *testing.T, s *release.Store, app *berthv1.Application) string {
	t.Helper()
	rels, err := s.List(context.Background(), app.Namespace, app.Name)
	if err != nil {
		t.Fatal(err)
	}
	var nums []int64
	for _, r := range rels {
		nums = append(nums, r.Spec.Number)
	}
	return fmt.Sprint(nums)
}
