package application

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/render"
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
	app := &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Generation: 3}}
	opts := render.Options{ReleaseName: "web", Namespace: "apps", KubeVersion: "v1.37.0", APIVersions: []string{"v1", "apps/v1"}}
	first, err := render.Render(context.Background(), dir, opts)
	must(t, err)
	r := &Reconciler{}
	key := helmRenderKey(app, "c0ffee", opts)
	must(t, r.keepHelmRender(app, key, first))

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

	other := app.DeepCopy()
	other.Generation = 4
	for _, k := range []string{
		helmRenderKey(app, "decade", opts),
		helmRenderKey(other, "c0ffee", opts),
		helmRenderKey(app, "c0ffee", render.Options{KubeVersion: "v1.38.0", APIVersions: opts.APIVersions}),
		helmRenderKey(app, "c0ffee", render.Options{KubeVersion: opts.KubeVersion, APIVersions: []string{"v1", "apps/v1", "example.test/v1"}}),
		"",
	} {
		if res, err := r.cachedHelmRender(app, k, dir, opts); res != nil || err != nil {
			t.Errorf("key %q: got a kept render (%v), want none", k, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
