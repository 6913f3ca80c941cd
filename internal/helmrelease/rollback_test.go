package helmrelease

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/loader"

	"github.com/berth-dev/berth/internal/testenv"
)

// A chart's pre-rollback hook that fails: each rollback says so
// (ErrHookFailed, for the caller to hold rather than retry), leaves its
// revision failed with Helm's error rather than pending (which the next
// operation would take for an interrupted one), and Helm keeps no more
// revisions than asked, however often it is tried (so often, the
// revision it rolls back to is trimmed: the caller holds, not retries).
func TestARollbackWhoseHookFailsIsBoundedAndSaysSo(t *testing.T) {
	env := testenv.Sandbox(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	// The API server refuses the hook's object (its name is not a DNS
	// name): the hook fails at once.
	hook := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Name\n  annotations:\n    helm.sh/hook: pre-rollback\n"
	opts := Options{Namespace: ns, ReleaseName: "hooked", MaxHistory: 4}
	for _, greeting := range []string{"v1", "v2"} {
		if _, err := Upgrade(ctx, env.Config, chartWith(t, greeting, map[string]string{"templates/hook.yaml": hook}), nil, opts); err != nil {
			t.Fatal(err)
		}
	}
	hookFailures := 0
	for i := range 6 {
		_, err := Rollback(ctx, env.Config, ns, "hooked", 1, 4)
		if err != nil && strings.Contains(err.Error(), "has no 1 version") && hookFailures > 0 {
			continue // trimmed by the bound below: why the caller holds
		}
		if !errors.Is(err, ErrHookFailed) {
			t.Fatalf("rollback %d: %v, want ErrHookFailed", i+1, err)
		}
		hookFailures++
		latest, lerr := Latest(env.Config, ns, "hooked")
		if lerr != nil {
			t.Fatal(lerr)
		}
		if latest.Status != "failed" || !strings.Contains(latest.Description, "pre-rollback") || strings.Contains(latest.Description, "interrupted") {
			t.Fatalf("rollback %d left revision %d %s %q; want failed, with the hook's error", i+1, latest.Version, latest.Status, latest.Description)
		}
	}
	hist, err := History(env.Config, ns, "hooked")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) > 4 {
		t.Fatalf("Helm keeps %d revisions after six failed rollbacks, want at most 4", len(hist))
	}
}

// chartWith is loadChart's chart with extra files.
func chartWith(t *testing.T, greeting string, extra map[string]string) chart.Charter {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: hello\nversion: 0.1.0\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  greeting: " + greeting + "\n",
	}
	for name, body := range extra {
		files[name] = body
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := loader.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}
