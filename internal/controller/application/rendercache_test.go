package application

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/render"
	"github.com/berth-dev/berth/internal/renderworker"
)

// A chart's render is kept per commit and spec: a later pass gets the same
// objects back (a random value, numbers as the render typed them), its own copy of them,
// and the chart loaded again; another commit or spec gets nothing.
func TestHelmRenderIsKeptPerCommitAndSpec(t *testing.T) {
	dir := t.TempDir()
	for p, c := range map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
		"templates/all.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nonce\ndata:\n  nonce: {{ randAlphaNum 24 | quote }}\n---\n" +
			"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1000000\n",
		"templates/hook.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hook\n  annotations: {helm.sh/hook: pre-upgrade}\n",
	} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644))
	}
	app := &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Generation: 3, UID: "u1"}}
	opts := render.Options{ReleaseName: "web", Namespace: "apps", KubeVersion: "v1.37.0", APIVersions: []string{"v1", "apps/v1"}}
	first, err := render.Render(context.Background(), dir, opts)
	must(t, err)
	r := &Reconciler{}
	keyOf := func(app *berthv1.Application, sha, user string, opts render.Options) string {
		t.Helper()
		k, err := renderKey(app, sha, user, opts)
		must(t, err)
		return k
	}
	key := keyOf(app, "c0ffee", "sa", opts)
	must(t, r.keepHelmRender(app, key, first))

	// The same render: API versions in another order (discovery's order
	// changes), another spec generation that changed no render input.
	later := app.DeepCopy()
	later.Generation = 4
	later.Spec.Source.Interval = &metav1.Duration{Duration: time.Hour}
	if k := keyOf(later, "c0ffee", "sa", render.Options{ReleaseName: "web", Namespace: "apps", KubeVersion: "v1.37.0", APIVersions: []string{"apps/v1", "v1"}}); k != key {
		t.Error("the key changed with the order of the API versions, or with a spec change that is no render input")
	}

	got, err := r.cachedHelmRender(app, key, dir, opts)
	must(t, err)
	if got == nil || got.Helm == nil || got.Helm.ReleaseName != "web" {
		t.Fatalf("kept render = %+v, want one with its chart", got)
	}
	if d := cmp.Diff(first.Objects, got.Objects); d != "" {
		t.Errorf("kept objects differ (-rendered +kept):\n%s", d)
	}
	if d := cmp.Diff(first.HelmHooks, got.HelmHooks); d != "" || len(got.HelmHooks) != 1 {
		t.Errorf("kept hooks differ (-rendered +kept):\n%s", d)
	}
	got.Objects[0].Object.SetLabels(map[string]string{"changed": "in place"})
	again, err := r.cachedHelmRender(app, key, dir, opts)
	must(t, err)
	if again.Objects[0].Object.GetLabels() != nil {
		t.Error("a change to one pass's objects reached the next pass")
	}

	recreated := app.DeepCopy()
	recreated.UID = "u2"
	synced := app.DeepCopy()
	synced.Annotations = map[string]string{berthv1.SyncRequestedAnnotation: "now"}
	valued := opts
	valued.Values = map[string]any{"replicas": 2}
	for what, k := range map[string]string{
		"another commit":                keyOf(app, "decade", "sa", opts),
		"the Application created again": keyOf(recreated, "c0ffee", "sa", opts),
		"a sync request":                keyOf(synced, "c0ffee", "sa", opts),
		"another account":               keyOf(app, "c0ffee", "other", opts),
		"other values":                  keyOf(app, "c0ffee", "sa", valued),
		"another kube version":          keyOf(app, "c0ffee", "sa", render.Options{ReleaseName: "web", Namespace: "apps", KubeVersion: "v1.38.0", APIVersions: opts.APIVersions}),
		"another API":                   keyOf(app, "c0ffee", "sa", render.Options{ReleaseName: "web", Namespace: "apps", KubeVersion: "v1.37.0", APIVersions: []string{"v1", "apps/v1", "example.test/v1"}}),
		"no chart":                      "",
	} {
		if res, err := r.cachedHelmRender(app, k, dir, opts); res != nil || err != nil {
			t.Errorf("%s: got a kept render (%v), want none", what, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A render stopped at a worker's limit is remembered for its key only: the
// same key gets the error back without a render, another key renders (and
// forgets it); other errors are not remembered.
func TestRenderStopIsKeptPerKey(t *testing.T) {
	r := &Reconciler{}
	app := &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps"}}
	r.keepRenderStop(app, "k1", errors.New("template: cm.yaml:3: bad"))
	if err := r.renderStopped(app, "k1"); err != nil {
		t.Fatalf("a template error was remembered: %v", err)
	}
	stop := &renderworker.LimitError{Reason: "memory", Limit: "256 MiB"}
	r.keepRenderStop(app, "k1", fmt.Errorf("chart: %w", stop))
	err := r.renderStopped(app, "k1")
	var le *renderworker.LimitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "more than 256 MiB") || !strings.Contains(err.Error(), "not rendered again") {
		t.Fatalf("same key: %v, want the stop", err)
	}
	if err := r.renderStopped(app, "k2"); err != nil {
		t.Fatalf("another key: %v, want a render", err)
	}
	if err := r.renderStopped(app, "k1"); err != nil {
		t.Fatalf("the first key after another: %v, want a render", err)
	}
}
