package helmrelease

import (
	"context"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/release/common"
	rspb "helm.sh/helm/v4/pkg/release/v1"

	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func loadChart(t *testing.T, greeting string) chart.Charter {
	t.Helper()
	return chartWith(t, greeting, nil)
}

// A revision left pending by a killed process is marked failed and the
// next upgrade and rollback go through instead of failing with "another
// operation is in progress".
func TestUpgradeAndRollbackRecoverAPendingRelease(t *testing.T) {
	env := testenv.Sandbox(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	opts := Options{Namespace: ns, ReleaseName: "hello"}
	if _, err := Upgrade(ctx, env.Config, loadChart(t, "v1"), nil, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := Upgrade(ctx, env.Config, loadChart(t, "v2"), nil, opts); err != nil {
		t.Fatal(err)
	}
	// What a crash between Helm's "pending" record and its cluster update
	// leaves behind.
	lock := func(st common.Status) {
		t.Helper()
		ac, err := configure(env.Config, ns)
		if err != nil {
			t.Fatal(err)
		}
		last, err := ac.Releases.Last("hello")
		if err != nil {
			t.Fatal(err)
		}
		rel := last.(*rspb.Release)
		rel.Info.Status = st
		if err := ac.Releases.Update(rel); err != nil {
			t.Fatal(err)
		}
	}
	lock(common.StatusPendingUpgrade)
	rel, err := Upgrade(ctx, env.Config, loadChart(t, "v3"), nil, opts)
	if err != nil {
		t.Fatalf("upgrade over a pending revision: %v", err)
	}
	if rel.Version != 3 || rel.Status != "deployed" {
		t.Fatalf("upgrade = v%d %s, want v3 deployed", rel.Version, rel.Status)
	}
	hist, err := History(env.Config, ns, "hello")
	if err != nil {
		t.Fatal(err)
	}
	// Helm then marks the unlocked revision superseded; the description
	// keeps the story.
	if hist[1].Status == "pending-upgrade" || !strings.Contains(hist[1].Description, "pending-upgrade interrupted") {
		t.Fatalf("revision 2 = %s %q, want unlocked with the reason", hist[1].Status, hist[1].Description)
	}

	lock(common.StatusPendingRollback)
	v, err := Rollback(ctx, env.Config, ns, "hello", 1, 0)
	if err != nil {
		t.Fatalf("rollback over a pending revision: %v", err)
	}
	latest, err := Latest(env.Config, ns, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if latest.Version != 4 || latest.Status != "deployed" || v != 4 {
		t.Fatalf("after rollback latest = v%d %s, Rollback said v%d", latest.Version, latest.Status, v)
	}
	// Asked again (a retry), it finds the rollback done and makes no new
	// revision.
	if v, err := Rollback(ctx, env.Config, ns, "hello", 1, 0); err != nil || v != 4 {
		t.Fatalf("repeated rollback = v%d, %v; want v4 again", v, err)
	}
	if latest, err := Latest(env.Config, ns, "hello"); err != nil || latest.Version != 4 {
		t.Fatalf("after a repeated rollback latest = %+v, %v; want v4", latest, err)
	}
	if n, err := Unlock(env.Config, ns, "hello"); err != nil || n != 0 {
		t.Fatalf("Unlock on a deployed release = %d, %v; want nothing to do", n, err)
	}
}

// Values removed from Git are removed from the release: an upgrade with
// no values installs the chart's defaults, not the previous release's.
func TestUpgradeWithoutValuesResetsThem(t *testing.T) {
	env := testenv.Sandbox(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	opts := Options{Namespace: ns, ReleaseName: "hello"}
	ch := loadChart(t, `{{ .Values.greeting | default "chart-default" }}`)
	rel, err := Upgrade(ctx, env.Config, ch, map[string]any{"greeting": "from-values"}, opts)
	if err != nil || !strings.Contains(rel.Manifest, "greeting: from-values") {
		t.Fatalf("install with values: %v\n%v", err, rel)
	}
	rel, err = Upgrade(ctx, env.Config, ch, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rel.Manifest, "greeting: chart-default") {
		t.Errorf("upgrade without values installed:\n%s\nwant the chart's default", rel.Manifest)
	}
}
