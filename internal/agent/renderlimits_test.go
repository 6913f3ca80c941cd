package agent_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/berth-dev/berth/internal/helmrelease"
)

// renderStops reads berth_render_worker_stops_total for reason.
func renderStops(t *testing.T, reason string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	must(t, err)
	for _, mf := range families {
		if mf.GetName() != "berth_render_worker_stops_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// A chart whose template would take all memory is stopped in its worker
// process: its revision is rejected with the limit in the message, the
// release before it keeps running, the agent goes on serving the other
// Applications, the same commit is not rendered again at every poll, and
// the fixed chart is applied.
func TestChartThatTakesAllMemoryIsStopped(t *testing.T) {
	f := newFixture(t)
	sha := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).
		Write("plain/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {v: \"1\"}\n").CommitAndPush("chart")
	f.createApp("hello", "chart")
	f.createApp("plain", "plain")
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(sha))
	f.waitApp("plain", 60*time.Second, "plain applied", appliedReady(sha))

	before := renderStops(t, "memory")
	// `until` makes a list of 200 million integers (1.6 GB) before the
	// range writes anything.
	bomb := f.wt.Write("chart/templates/bomb.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  n: \"{{ range until 200000000 }}x{{ end }}\"\n").
		Write("plain/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {v: \"2\"}\n").CommitAndPush("bomb")
	msg := f.waitRejected("hello", bomb, "RenderFailed")
	if !strings.Contains(msg, "the render was stopped: it used more than 256 MiB of memory") || !strings.Contains(msg, "still running "+sha[:8]) {
		t.Errorf("rejection %q does not name the memory limit and the running revision", msg)
	}
	f.waitApp("plain", 60*time.Second, "the other Application applied meanwhile", appliedReady(bomb))
	var c corev1.ConfigMap
	f.get(&c, "hello-config")
	hist, err := helmrelease.History(f.env.Config, f.ns, "hello")
	must(t, err)
	if len(hist) != 1 {
		t.Errorf("%d Helm revisions after the stopped render, want 1", len(hist))
	}
	// Polls every 2 s: the stopped render is remembered, not made again.
	time.Sleep(6 * time.Second)
	if got := renderStops(t, "memory") - before; got != 1 {
		t.Errorf("%v renders stopped for memory over 6 s of polls, want 1", got)
	}
	app := f.waitRejected("hello", bomb, "RenderFailed")
	if !strings.Contains(app, "not rendered again until the commit or the Application's spec changes") {
		t.Errorf("later message %q does not say the render is not made again", app)
	}

	fixed := f.wt.Remove("chart/templates/bomb.yaml").Write("chart/values.yaml", "replicas: 2\nenv: default\n").CommitAndPush("fix")
	f.waitApp("hello", 60*time.Second, "the fixed chart applied", appliedReady(fixed))
	f.get(&c, "hello-config")
	if c.Data["replicas"] != "2" {
		t.Errorf("replicas %q after the fix, want 2", c.Data["replicas"])
	}
}
