package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/berth-dev/berth/internal/apps"
	"github.com/berth-dev/berth/internal/install"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Cost is the API server's CPU time per request of one kind.
type Cost struct {
	Request string
	CPU     time.Duration
	Wall    time.Duration // for all the requests of this kind
}

// RunRequestCosts measures what each kind of request an agent sync makes
// (and a plain create, the baseline's) costs the API server in CPU: on a
// fresh sandbox with the controller-manager paused, so that nothing
// reacts to the objects, it sends n requests of each kind from 8 workers
// and divides the API server process's CPU time (/proc), less its idle
// rate over the same time, by n.
func RunRequestCosts(ctx context.Context, o Options, n int) ([]Cost, error) {
	bins, err := sandbox.Build(ctx, sandbox.BuildOptions{Progress: o.Out})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "berth-bench-costs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sbDir := filepath.Join(dir, "sandbox")
	st, err := sandbox.Up(ctx, sandbox.UpOptions{Dir: sbDir, Binaries: bins, Nodes: 1, DieWithParent: true})
	if err != nil {
		return nil, err
	}
	defer func() { _, _ = sandbox.Down(context.Background(), sbDir) }()
	kcm := st.Processes[sandbox.ControllerManager].PID
	apiserver := st.Processes[sandbox.APIServer].PID
	if kcm <= 0 || apiserver <= 0 {
		return nil, fmt.Errorf("the sandbox's state lacks the controller-manager or API server process")
	}
	if err := syscall.Kill(kcm, syscall.SIGSTOP); err != nil {
		return nil, fmt.Errorf("pausing the controller-manager: %w", err)
	}
	defer func() { _ = syscall.Kill(kcm, syscall.SIGCONT) }()

	_, cfg, _, err := apps.Connection{Kubeconfig: sandbox.KubeconfigPath(sbDir)}.Client()
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 5000, 5000
	if _, err := install.Apply(ctx, cfg, install.Options{CRDsOnly: true}); err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	for _, obj := range []func() error{
		func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer"}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "deployer"},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "admin"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: ns}}}, metav1.CreateOptions{})
			return err
		},
	} {
		if err := obj(); err != nil {
			return nil, err
		}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	// The agent writes as the Application's service account.
	icfg := rest.CopyConfig(cfg)
	icfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":deployer"}
	agent, err := dynamic.NewForConfig(icfg)
	if err != nil {
		return nil, err
	}
	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	releases := schema.GroupVersionResource{Group: "berth.dev", Version: "v1alpha1", Resource: "releases"}
	applications := schema.GroupVersionResource{Group: "berth.dev", Version: "v1alpha1", Resource: "applications"}
	var deployment *unstructured.Unstructured
	objs, err := manifest.Parse("app.yaml", []byte(strings.NewReplacer("NAME", "x", "REV", "1").Replace(appTemplate)))
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if o.Object.GetKind() == "Deployment" {
			deployment = o.Object
		}
	}
	named := func(name string) *unstructured.Unstructured {
		u := deployment.DeepCopy()
		u.SetName(name)
		u.SetNamespace(ns)
		return u
	}
	force := true
	// The agent's dry run is strict; its write, of the same bytes, is not
	// (apply.Manager.patch); "strict" shows what that saves.
	applyDeployment := func(name string, dryRun, strict bool) error {
		data, err := json.Marshal(named(name).Object)
		if err != nil {
			return err
		}
		opts := metav1.PatchOptions{FieldManager: "berth", Force: &force, FieldValidation: "Ignore"}
		if strict {
			opts.FieldValidation = "Strict"
		}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		_, err = agent.Resource(deployments).Namespace(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
		return err
	}
	application := func(i int) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "berth.dev/v1alpha1", "kind": "Application",
			"metadata": map[string]any{"name": appName(i), "namespace": ns},
			"spec": map[string]any{"source": map[string]any{"url": "http://127.0.0.1/bench.git", "path": "apps/" + appName(i)},
				"namespace": ns, "serviceAccountName": "deployer"}}}
	}
	release := func(i int) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "berth.dev/v1alpha1", "kind": "Release",
			"metadata": map[string]any{"name": appName(i) + "-r1", "namespace": ns, "labels": map[string]any{"berth.dev/application": appName(i)}},
			"spec": map[string]any{"application": appName(i), "number": int64(1), "commit": strings.Repeat("a", 40),
				"digest": "sha256:" + strings.Repeat("b", 64), "trigger": "commit", "renderer": "plain", "objectCount": int64(4),
				"manifests": []any{map[string]any{"secretName": appName(i) + "-r1-m0"}}}}}
	}
	appStatus, err := json.Marshal(map[string]any{"status": map[string]any{
		"lastAppliedRevision": strings.Repeat("c", 40), "health": "Progressing", "sync": "Synced",
		"inventory": []any{
			map[string]any{"version": "v1", "kind": "ServiceAccount", "namespace": ns, "name": "x"},
			map[string]any{"group": "apps", "version": "v1", "kind": "Deployment", "namespace": ns, "name": "x"},
			map[string]any{"version": "v1", "kind": "Service", "namespace": ns, "name": "x"},
			map[string]any{"group": "networking.k8s.io", "version": "v1", "kind": "Ingress", "namespace": ns, "name": "x"}},
		"conditions": []any{map[string]any{"type": "Ready", "status": "False", "reason": "Progressing",
			"message": "revision cccccc applied, waiting for Deployment/x", "lastTransitionTime": "2026-01-01T00:00:00Z"}}}})
	if err != nil {
		return nil, err
	}
	kinds := []struct {
		name string
		do   func(i int) error
	}{
		{"POST deployment (the baseline's create)", func(i int) error {
			_, err := dyn.Resource(deployments).Namespace(ns).Create(ctx, named(fmt.Sprintf("p-%d", i)), metav1.CreateOptions{})
			return err
		}},
		{"APPLY deployment, dry run (new)", func(i int) error { return applyDeployment(fmt.Sprintf("a-%d", i), true, true) }},
		{"APPLY deployment (create)", func(i int) error { return applyDeployment(fmt.Sprintf("a-%d", i), false, false) }},
		{"APPLY deployment (create, strict)", func(i int) error { return applyDeployment(fmt.Sprintf("s-%d", i), false, true) }},
		{"APPLY deployment, dry run (unchanged)", func(i int) error { return applyDeployment(fmt.Sprintf("a-%d", i), true, true) }},
		{"GET deployment", func(i int) error {
			_, err := agent.Resource(deployments).Namespace(ns).Get(ctx, fmt.Sprintf("a-%d", i), metav1.GetOptions{})
			return err
		}},
		{"POST application", func(i int) error {
			_, err := dyn.Resource(applications).Namespace(ns).Create(ctx, application(i), metav1.CreateOptions{})
			return err
		}},
		{"PATCH applications/status", func(i int) error {
			_, err := dyn.Resource(applications).Namespace(ns).Patch(ctx, appName(i), types.MergePatchType, appStatus, metav1.PatchOptions{}, "status")
			return err
		}},
		{"POST release", func(i int) error {
			_, err := dyn.Resource(releases).Namespace(ns).Create(ctx, release(i), metav1.CreateOptions{})
			return err
		}},
		{"POST secret (release manifests, 2 KiB)", func(i int) error {
			_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: appName(i) + "-r1-m0"},
				Data: map[string][]byte{"manifests.gz": make([]byte, 2048)}}, metav1.CreateOptions{})
			return err
		}},
		{"PATCH releases/status (verdict)", func(i int) error {
			_, err := dyn.Resource(releases).Namespace(ns).Patch(ctx, appName(i)+"-r1", types.MergePatchType,
				[]byte(`{"status":{"health":"Healthy","reason":"Healthy, 4 objects"}}`), metav1.PatchOptions{}, "status")
			return err
		}},
		{"POST event", func(i int) error {
			_, err := cs.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("e-%d", i)},
				InvolvedObject: corev1.ObjectReference{Kind: "Application", Namespace: ns, Name: appName(i)},
				Reason:         "Applied", Message: "revision cccccc applied: 4 created", Type: corev1.EventTypeNormal}, metav1.CreateOptions{})
			return err
		}},
	}
	// The API server works in the background too (leases, kwok's node
	// heartbeats): its idle rate is subtracted from every figure.
	idle0, err := processCPU(apiserver)
	if err != nil {
		return nil, err
	}
	idleStart := time.Now()
	time.Sleep(3 * time.Second)
	idle1, err := processCPU(apiserver)
	if err != nil {
		return nil, err
	}
	idleRate := float64(idle1-idle0) / float64(time.Since(idleStart))
	var out []Cost
	for _, k := range kinds {
		before, err := processCPU(apiserver)
		if err != nil {
			return out, err
		}
		t0 := time.Now()
		if err := fanOut(n, 8, k.do); err != nil {
			return out, fmt.Errorf("%s: %w", k.name, err)
		}
		wall := time.Since(t0)
		time.Sleep(200 * time.Millisecond) // let the watch fan-out finish
		after, err := processCPU(apiserver)
		if err != nil {
			return out, err
		}
		busy := after - before - time.Duration(idleRate*float64(time.Since(t0)))
		out = append(out, Cost{Request: k.name, CPU: max(busy, 0) / time.Duration(n), Wall: wall})
	}
	return out, nil
}

// fanOut runs do(0..n-1) on the given number of workers and returns the
// first error; after one, the rest are not started.
func fanOut(n, workers int, do func(i int) error) error {
	work := make(chan int)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return first != nil }
	for range workers {
		wg.Go(func() {
			for i := range work {
				if err := do(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := 0; i < n && !failed(); i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	return first
}

// processCPU is the user and system CPU time a process has used.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndex(s, ")")
	if i < 0 || i+2 > len(s) {
		return 0, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	// Linux reports clock ticks of USER_HZ, 100 per second.
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// PrintRequestCosts prints the table of RunRequestCosts.
func PrintRequestCosts(w io.Writer, costs []Cost, n int) {
	fmt.Fprintf(w, "\nAPI server CPU per request (%d requests of each kind, 8 at a time, controller-manager paused, idle CPU subtracted):\n\n", n)
	fmt.Fprintln(w, "| request | API server CPU | wall time for all |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, c := range costs {
		fmt.Fprintf(w, "| %s | %.2f ms | %s |\n", c.Request, float64(c.CPU.Microseconds())/1000, c.Wall.Round(time.Millisecond))
	}
}
