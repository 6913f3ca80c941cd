package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/sandbox"
)

// RollbackResult holds the rollback figures.
type RollbackResult struct {
	// Recovery is, per run, the time from the failure signal (the
	// Deployment's ProgressDeadlineExceeded, as observed) to the previous
	// release running Healthy again.
	Recovery []time.Duration
	// RehearsalRatio is the rehearsal dry-run's time over the sync's, for a
	// 50-object app (median of the runs).
	RehearsalRatio float64
	SyncTime       time.Duration
	RehearsalTime  time.Duration
}

const rollbackApp = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  progressDeadlineSeconds: 5
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example.test/web:TAG
`

// RunRollback measures automatic rollback runs times: push a commit whose
// image never becomes ready, wait for the failure signal, then for the
// previous release to be Healthy again; then a good commit resumes Git.
func RunRollback(ctx context.Context, o Options, runs int) (*RollbackResult, error) {
	bins, err := sandbox.Build(ctx, sandbox.BuildOptions{Progress: o.Out})
	if err != nil {
		return nil, err
	}
	write := func(work string, tag string) error {
		d := filepath.Join(work, "apps", "web")
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(d, "app.yaml"), []byte(strings.ReplaceAll(rollbackApp, "TAG", tag)), 0o644)
	}
	e, err := start(ctx, o, bins, 1, func(work string, _ int) error { return write(work, "1") })
	if e != nil {
		defer e.close()
	}
	if err != nil {
		return nil, err
	}
	app := &berthv1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: berthv1.ApplicationSpec{
			Source:    berthv1.GitSource{URL: e.repoURL, Path: "apps/web", Interval: &metav1.Duration{Duration: 10 * time.Minute}},
			Namespace: ns, ServiceAccountName: "deployer",
		},
	}
	if err := e.c.Create(ctx, app); err != nil {
		return nil, err
	}
	key := types.NamespacedName{Namespace: ns, Name: "web"}
	if err := waitApp(ctx, e, key, func(a *berthv1.Application) bool { return readyApp(a) && a.Status.Pin == nil }); err != nil {
		return nil, err
	}
	res := &RollbackResult{}
	for i := range runs {
		if err := write(e.work, fmt.Sprintf("%d-never-ready", i+2)); err != nil {
			return nil, err
		}
		if err := commit(ctx, e.work, "bad"); err != nil {
			return nil, err
		}
		if err := notify(ctx, e.hookURL, e.repoURL); err != nil {
			return nil, err
		}
		var failedAt time.Time
		deadline := time.Now().Add(2 * time.Minute)
		for failedAt.IsZero() && time.Now().Before(deadline) {
			var d appsv1.Deployment
			if err := e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &d); err == nil {
				for _, c := range d.Status.Conditions {
					if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
						failedAt = time.Now()
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if failedAt.IsZero() {
			return res, fmt.Errorf("run %d: the bad release never failed", i)
		}
		if err := waitApp(ctx, e, key, func(a *berthv1.Application) bool {
			return a.Status.Pin != nil && readyApp(a)
		}); err != nil {
			return res, fmt.Errorf("run %d: %w", i, err)
		}
		res.Recovery = append(res.Recovery, time.Since(failedAt))
		fmt.Fprintf(o.Out, "rollback run %d: previous release Healthy %s after the failure signal\n", i+1, res.Recovery[i].Round(10*time.Millisecond))
		// A good commit resumes Git (and becomes the next rollback target).
		if err := write(e.work, fmt.Sprintf("%d", i+2)); err != nil {
			return nil, err
		}
		if err := commit(ctx, e.work, "good"); err != nil {
			return nil, err
		}
		if err := notify(ctx, e.hookURL, e.repoURL); err != nil {
			return nil, err
		}
		if err := waitApp(ctx, e, key, func(a *berthv1.Application) bool {
			return a.Status.Pin == nil && readyApp(a) && a.Status.LastAppliedRevision == a.Status.LastFetchedRevision
		}); err != nil {
			return res, fmt.Errorf("run %d resume: %w", i, err)
		}
	}
	if err := rehearsalCost(ctx, e, res); err != nil {
		return res, err
	}
	return res, nil
}

func readyApp(a *berthv1.Application) bool {
	r := meta.FindStatusCondition(a.Status.Conditions, berthv1.ConditionReady)
	return r != nil && r.Status == metav1.ConditionTrue && r.ObservedGeneration == a.Generation
}

func waitApp(ctx context.Context, e *env, key types.NamespacedName, cond func(*berthv1.Application) bool) error {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		a := &berthv1.Application{}
		if err := e.c.Get(ctx, key, a); err == nil && cond(a) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("application %s did not reach the expected state (agent log %s)", key, e.agentLog)
}

// rehearsalCost compares, for a 50-object app, the server-side dry-run the
// rehearsal runs with the sync (validate + apply) of a changed revision.
func rehearsalCost(ctx context.Context, e *env, res *RollbackResult) error {
	dc, err := discovery.NewDiscoveryClientForConfig(e.cfg)
	if err != nil {
		return err
	}
	m := apply.NewManager(dynamic.NewForConfigOrDie(e.cfg), restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)))
	objs := func(v string) ([]manifest.Object, error) {
		var b strings.Builder
		for i := range 25 {
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%02d, namespace: %s}\ndata: {v: %q}\n", i, ns, v)
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-%02d, namespace: %s, labels: {v: %q}}\nspec: {ports: [{port: 80}]}\n", i, ns, v)
		}
		return manifest.Parse("rehearsal.yaml", []byte(b.String()))
	}
	var syncs, rehearsals []time.Duration
	for i := range 11 {
		prev, err := objs(fmt.Sprint(i))
		if err != nil {
			return err
		}
		next, err := objs(fmt.Sprint(i + 1))
		if err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := m.Apply(ctx, next); err != nil {
			return err
		}
		syncs = append(syncs, time.Since(t0))
		t0 = time.Now()
		if _, err := m.Validate(ctx, prev); err != nil {
			return err
		}
		rehearsals = append(rehearsals, time.Since(t0))
	}
	res.SyncTime, res.RehearsalTime = pct(syncs[1:], 50), pct(rehearsals[1:], 50)
	res.RehearsalRatio = float64(res.RehearsalTime) / float64(res.SyncTime)
	return nil
}

// PrintRollback writes the rollback figures.
func PrintRollback(w io.Writer, r *RollbackResult) {
	fmt.Fprintf(w, "\nautomatic rollback over %d runs: failure signal → previous release Healthy p50 %s, p95 %s, max %s\n",
		len(r.Recovery), pct(r.Recovery, 50).Round(10*time.Millisecond), pct(r.Recovery, 95).Round(10*time.Millisecond), pct(r.Recovery, 100).Round(10*time.Millisecond))
	fmt.Fprintf(w, "rehearsal dry-run of a 50-object release: %s vs %s for the sync (validate + apply): %.0f%% of the sync time\n",
		r.RehearsalTime.Round(time.Millisecond), r.SyncTime.Round(time.Millisecond), 100*r.RehearsalRatio)
}
