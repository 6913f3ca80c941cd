package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/berth-dev/berth/internal/apps"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/sandbox"
)

// resources maps the kinds of the bench's app to their resources.
var resources = map[string]schema.GroupVersionResource{
	"ServiceAccount": {Version: "v1", Resource: "serviceaccounts"},
	"Deployment":     {Group: "apps", Version: "v1", Resource: "deployments"},
	"Service":        {Version: "v1", Resource: "services"},
	"Ingress":        {Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
}

// runBaseline measures what the cluster alone needs for n apps: on a fresh
// sandbox of the same shape, it creates the same objects directly (plain
// creates, as many at a time as the agent reconciles Applications; no Git, no validation, no records,
// no agent) and returns the time until every Deployment is available. The
// agent's figure is reported against it.
func runBaseline(ctx context.Context, o Options, bins sandbox.Binaries, n int) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "berth-bench-baseline-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	sbDir := filepath.Join(dir, "sandbox")
	st, err := sandbox.Up(ctx, sandbox.UpOptions{Dir: sbDir, Binaries: bins, Nodes: 3, ExtraArgs: profileArgs(), DieWithParent: true})
	if err != nil {
		return 0, err
	}
	defer func() { _, _ = sandbox.Down(context.Background(), sbDir) }()
	_, cfg, _, err := apps.Connection{Kubeconfig: sandbox.KubeconfigPath(sbDir)}.Client()
	if err != nil {
		return 0, err
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	var objs []manifest.Object
	for i := range n {
		name := appName(i)
		y := strings.NewReplacer("NAME", name, "REV", "1").Replace(appTemplate)
		o, err := manifest.Parse(name+".yaml", []byte(y))
		if err != nil {
			return 0, err
		}
		objs = append(objs, o...)
	}

	var before map[string]float64
	if o.Requests {
		if before, err = requestCounts(ctx, cfg); err != nil {
			return 0, err
		}
	}
	pids := processes(st, 0)
	cpu0 := readCPU(pids)
	profiled := profileAPIServer(ctx, cfg, fmt.Sprintf("baseline-%d", n), o.Out)
	start := time.Now()
	err = fanOut(len(objs), o.concurrency(), func(i int) error {
		obj := objs[i]
		gvr, ok := resources[obj.Object.GetKind()]
		if !ok {
			return fmt.Errorf("baseline: no resource for %s", obj.ID())
		}
		if _, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, obj.Object, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("baseline: creating %s: %w", obj.ID(), err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := waitDeploymentsAvailable(ctx, cs, n); err != nil {
		return 0, err
	}
	took := time.Since(start)
	printCPU(o.Out, fmt.Sprintf("%d apps, baseline", n), cpu0, readCPU(pids), n, took, runtime.NumCPU())
	profiled()
	if o.Requests {
		after, err := requestCounts(ctx, cfg)
		if err != nil {
			return 0, err
		}
		printRequests(o.Out, fmt.Sprintf("%d apps, baseline", n), before, after, n)
	}
	return took, nil
}

// waitDeploymentsAvailable watches the bench namespace's Deployments until
// n are available.
func waitDeploymentsAvailable(ctx context.Context, cs kubernetes.Interface, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	available := map[string]bool{}
	for {
		w, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("baseline: %d/%d Deployments available: %w", len(available), n, err)
		}
		for ev := range w.ResultChan() {
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok {
				continue
			}
			if d.Status.AvailableReplicas >= 1 {
				available[d.Name] = true
			}
			if len(available) == n {
				w.Stop()
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("baseline: %d/%d Deployments available after 10m", len(available), n)
		}
	}
}
