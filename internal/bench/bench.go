package bench

import (
	"context"
	"fmt"
	"io"
	"k8s.io/client-go/rest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/apps"
	"github.com/berth-dev/berth/internal/gitserver"
	"github.com/berth-dev/berth/internal/install"
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/webhook"
)

// gcDiscovery is how long the garbage collector may take to discover new
// resources: its discovery period (30 s) and a margin.
const gcDiscovery = 32 * time.Second

// Options configure a run.
type Options struct {
	// Sizes are the numbers of Applications, measured in order.
	Sizes []int
	// Samples for the latency figures.
	Samples int
	// Binary is the berth executable that runs the agent.
	Binary string
	// Out receives the report.
	Out io.Writer
	// Timeout bounds each size.
	Timeout time.Duration
	// Baseline also measures, for each size, the cluster alone creating the
	// same objects directly (see runBaseline).
	Baseline bool
	// Requests prints the API server's requests per app, by verb and
	// resource, for the agent's run and the baseline.
	Requests bool
	// Concurrency is the agent's --concurrency, and the baseline's number
	// of workers (0: DefaultConcurrency).
	Concurrency int
}

// Result is one size's figures.
type Result struct {
	Apps        int
	ReadyIn     time.Duration
	PeakRSSMiB  float64
	PushP50     time.Duration
	PushP95     time.Duration
	HealP50     time.Duration
	Reconcilers int
	// Baseline is the direct-create time of the same objects (0: not
	// measured).
	Baseline time.Duration
}

// Run measures every size on a fresh sandbox and prints a table.
func Run(ctx context.Context, o Options) ([]Result, error) {
	if o.Samples == 0 {
		o.Samples = 20
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	bins, err := sandbox.Build(ctx, sandbox.BuildOptions{Progress: o.Out})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "agent --concurrency %d", o.concurrency())
	if o.Baseline {
		fmt.Fprintf(o.Out, "; the baseline creates with as many workers")
	}
	fmt.Fprintln(o.Out)
	var results []Result
	for _, n := range o.Sizes {
		var base time.Duration
		if o.Baseline {
			if base, err = runBaseline(ctx, o, bins, n); err != nil {
				return results, fmt.Errorf("%d apps: %w", n, err)
			}
			fmt.Fprintf(o.Out, "%d apps: created directly (no agent), all Deployments available in %s\n", n, base.Round(10*time.Millisecond))
		}
		r, err := runSize(ctx, o, bins, n)
		if err != nil {
			return results, fmt.Errorf("%d apps: %w", n, err)
		}
		r.Baseline = base
		results = append(results, r)
		fmt.Fprintf(o.Out, "%d apps: all Ready in %s, agent peak RSS %.0f MiB, push→applied p50 %s p95 %s, drift heal p50 %s\n",
			r.Apps, r.ReadyIn.Round(10*time.Millisecond), r.PeakRSSMiB, r.PushP50.Round(time.Millisecond), r.PushP95.Round(time.Millisecond), r.HealP50.Round(time.Millisecond))
	}
	fmt.Fprintln(o.Out)
	fmt.Fprintln(o.Out, "| apps | all Ready | direct create (baseline) | ratio | agent peak RSS | push→applied p50 | p95 | drift heal p50 |")
	fmt.Fprintln(o.Out, "|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		base, ratio := "-", "-"
		if r.Baseline > 0 {
			base = r.Baseline.Round(10 * time.Millisecond).String()
			ratio = fmt.Sprintf("%.2f", r.ReadyIn.Seconds()/r.Baseline.Seconds())
		}
		fmt.Fprintf(o.Out, "| %d | %s | %s | %s | %.0f MiB | %s | %s | %s |\n", r.Apps, r.ReadyIn.Round(10*time.Millisecond), base, ratio, r.PeakRSSMiB,
			r.PushP50.Round(time.Millisecond), r.PushP95.Round(time.Millisecond), r.HealP50.Round(time.Millisecond))
	}
	return results, nil
}

func runSize(ctx context.Context, o Options, bins sandbox.Binaries, n int) (Result, error) {
	res := Result{Apps: n}
	e, err := start(ctx, o, bins, n, func(work string, i int) error { return writeApp(work, i, "1") })
	if e != nil {
		defer e.close()
	}
	if err != nil {
		return res, err
	}
	c, work, repoURL, hookURL := e.c, e.work, e.repoURL, e.hookURL

	var before map[string]float64
	if o.Requests {
		if before, err = requestCounts(ctx, e.cfg); err != nil {
			return res, err
		}
	}
	pids := processes(e.sandbox, e.agentPID)
	pids["git-server"] = e.gitPID
	cpu0 := readCPU(pids)
	profiled := profileAPIServer(ctx, e.cfg, fmt.Sprintf("agent-%d", n), o.Out)
	start := time.Now()
	for i := range n {
		app := &berthv1.Application{
			ObjectMeta: metav1.ObjectMeta{Name: appName(i), Namespace: ns},
			Spec: berthv1.ApplicationSpec{
				Source:    berthv1.GitSource{URL: repoURL, Path: "apps/" + appName(i), Interval: &metav1.Duration{Duration: 10 * time.Minute}},
				Namespace: ns, ServiceAccountName: "deployer",
			},
		}
		if err := c.Create(ctx, app); err != nil {
			return res, err
		}
	}
	if err := waitAllReady(ctx, e.cfg, ns, n, o.Timeout, o.Out, start); err != nil {
		return res, fmt.Errorf("%w (agent log %s)", err, e.agentLog)
	}
	res.ReadyIn = time.Since(start)
	printCPU(o.Out, fmt.Sprintf("%d apps, agent", n), cpu0, readCPU(pids), n, res.ReadyIn, runtime.NumCPU())
	profiled()
	if o.Requests {
		after, err := requestCounts(ctx, e.cfg)
		if err != nil {
			return res, err
		}
		printRequests(o.Out, fmt.Sprintf("%d apps, agent", n), before, after, n)
	}
	fmt.Fprintf(o.Out, "%d apps: all Ready in %s; measuring latencies\n", n, res.ReadyIn.Round(10*time.Millisecond))

	// push→applied through the webhook, for app 0.
	var push []time.Duration
	for s := 1; s <= o.Samples; s++ {
		if err := writeApp(work, 0, strconv.Itoa(s+1)); err != nil {
			return res, err
		}
		t0 := time.Now()
		if err := commit(ctx, work, fmt.Sprintf("bump %d", s)); err != nil {
			return res, err
		}
		if err := notify(ctx, hookURL, repoURL); err != nil {
			return res, err
		}
		if err := waitLabel(ctx, c, ns, appName(0), strconv.Itoa(s+1)); err != nil {
			return res, err
		}
		push = append(push, time.Since(t0))
	}
	// Drift heal: change a Service label by hand, wait for Git's value.
	var heal []time.Duration
	for s := range o.Samples {
		svc := &corev1.Service{}
		// Apps other than app 0 are still at Git revision "1".
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: appName(1 + s%(max(n-1, 1)))}, svc); err != nil {
			return res, err
		}
		want := "1"
		svc.Labels["bench.berth.dev/rev"] = "edited"
		t0 := time.Now()
		if err := c.Update(ctx, svc); err != nil {
			return res, err
		}
		if err := waitServiceLabel(ctx, c, ns, svc.Name, want); err != nil {
			return res, err
		}
		heal = append(heal, time.Since(t0))
	}
	res.PushP50, res.PushP95 = pct(push, 50), pct(push, 95)
	res.HealP50 = pct(heal, 50)
	res.PeakRSSMiB = peakRSS(e.agentPID)
	return res, nil
}

func appName(i int) string { return fmt.Sprintf("app-%04d", i) }

func writeApp(work string, i int, rev string) error {
	name := appName(i)
	d := filepath.Join(work, "apps", name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	y := strings.NewReplacer("NAME", name, "REV", rev).Replace(appTemplate)
	return os.WriteFile(filepath.Join(d, "app.yaml"), []byte(y), 0o644)
}

const appTemplate = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: NAME
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
  labels: {bench.berth.dev/rev: "REV"}
spec:
  replicas: 1
  selector:
    matchLabels: {app: NAME}
  template:
    metadata:
      labels: {app: NAME}
    spec:
      serviceAccountName: NAME
      containers:
      - name: app
        image: registry.example.test/podinfo:6.5.0
        ports: [{containerPort: 9898}]
---
apiVersion: v1
kind: Service
metadata:
  name: NAME
  labels: {bench.berth.dev/rev: "REV"}
spec:
  selector: {app: NAME}
  ports: [{port: 80, targetPort: 9898}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: NAME
spec:
  rules:
  - host: NAME.example.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: NAME, port: {number: 80}}}
`

func commit(ctx context.Context, work, msg string) error {
	for _, args := range [][]string{
		{"add", "-A"},
		{"-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "--quiet", "-m", msg},
		{"push", "--quiet", "origin", "HEAD:main"},
	} {
		if err := gitserver.Run(ctx, work, args...); err != nil {
			return err
		}
	}
	return nil
}

func notify(ctx context.Context, hookURL, repoURL string) error {
	body := []byte(`{"url":"` + repoURL + `"}`)
	return postSigned(ctx, hookURL, body, webhook.Sign([]byte("bench-secret"), body))
}

// waitAllReady watches the Applications until n of them are Ready. It
// watches rather than lists: listing a thousand Applications four times a
// second would load the API server it is measuring.
func waitAllReady(ctx context.Context, cfg *rest.Config, ns string, n int, timeout time.Duration, out io.Writer, start time.Time) error {
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: agent.Scheme()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ready := map[string]bool{}
	applied := map[string]bool{}
	lastReport := time.Now()
	for {
		w, err := wc.Watch(ctx, &berthv1.ApplicationList{}, client.InNamespace(ns))
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%d/%d Applications Ready after %s", len(ready), n, timeout)
			}
			return err
		}
		for ev := range w.ResultChan() {
			a, ok := ev.Object.(*berthv1.Application)
			if !ok {
				continue
			}
			if ev.Type != watch.Deleted && a.Status.LastAppliedRevision != "" {
				applied[a.Name] = true
			}
			r := meta.FindStatusCondition(a.Status.Conditions, berthv1.ConditionReady)
			if ev.Type != watch.Deleted && r != nil && r.Status == metav1.ConditionTrue {
				ready[a.Name] = true
			} else {
				delete(ready, a.Name)
			}
			if len(ready) == n {
				w.Stop()
				return nil
			}
			if time.Since(lastReport) > 2*time.Second {
				fmt.Fprintf(out, "  %s: %d/%d Applications applied, %d Ready\n", time.Since(start).Round(time.Second), len(applied), n, len(ready))
				lastReport = time.Now()
			}
		}
		// The watch ended (server timeout): a new one starts with the
		// current state of every Application.
		if ctx.Err() != nil {
			return fmt.Errorf("%d/%d Applications Ready after %s", len(ready), n, timeout)
		}
	}
}

func waitLabel(ctx context.Context, c client.Client, ns, name, want string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var d metav1.PartialObjectMetadata
		d.SetGroupVersionKind(schemaDeployment)
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &d); err == nil && d.Labels["bench.berth.dev/rev"] == want {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("deployment %s never reached revision %s", name, want)
}

func waitServiceLabel(ctx context.Context, c client.Client, ns, name, want string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		svc := &corev1.Service{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, svc); err == nil && svc.Labels["bench.berth.dev/rev"] == want {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("service %s not healed", name)
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// peakRSS reads VmHWM (peak resident set) of pid in MiB.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// env is one benchmark's sandbox, repository, Git server and agent.
type env struct {
	work, repoURL, hookURL string
	c                      client.Client
	cfg                    *rest.Config
	sandbox                *sandbox.State
	agentPID, gitPID       int
	agentLog               string
	cleanups               []func()
}

const ns = "bench"

func (e *env) close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}

// start brings up a sandbox, a repository holding n apps written by
// write, a Git server and the agent (as its own process, for its RSS).
// On error the caller still calls close.
func start(ctx context.Context, o Options, bins sandbox.Binaries, n int, write func(work string, i int) error) (*env, error) {
	e := &env{}
	dir, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return e, err
	}
	e.cleanups = append(e.cleanups, func() { _ = os.RemoveAll(dir) })
	sbDir := filepath.Join(dir, "sandbox")
	st, err := sandbox.Up(ctx, sandbox.UpOptions{Dir: sbDir, Binaries: bins, Nodes: 3, ExtraArgs: profileArgs(), DieWithParent: true})
	if err != nil {
		return e, err
	}
	e.sandbox = st
	e.cleanups = append(e.cleanups, func() { _, _ = sandbox.Down(context.Background(), sbDir) })

	// Repository with n apps.
	gitRoot := filepath.Join(dir, "git")
	if err := os.MkdirAll(gitRoot, 0o755); err != nil {
		return e, err
	}
	if _, err := gitserver.CreateRepo(ctx, gitRoot, "bench"); err != nil {
		return e, err
	}
	work := filepath.Join(dir, "work")
	if err := gitserver.Run(ctx, "", "clone", "--quiet", filepath.Join(gitRoot, "bench.git"), work); err != nil {
		return e, err
	}
	for i := range n {
		if err := write(work, i); err != nil {
			return e, err
		}
	}
	if err := commit(ctx, work, "apps"); err != nil {
		return e, err
	}
	ports, err := sandbox.FreePorts(3)
	if err != nil {
		return e, err
	}
	gitAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	repoURL := "http://" + gitAddr + "/bench.git"
	git := exec.Command(o.Binary, "git-server", "--root", gitRoot, "--addr", gitAddr) //nolint:noctx // stopped below
	git.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := git.Start(); err != nil {
		return e, err
	}
	e.cleanups = append(e.cleanups, func() { _ = git.Process.Kill(); _ = git.Wait() })
	e.gitPID = git.Process.Pid

	conn := apps.Connection{Kubeconfig: sandbox.KubeconfigPath(sbDir)}
	c, cfg, _, err := conn.Client()
	if err != nil {
		return e, err
	}
	if _, err := install.Apply(ctx, cfg, install.Options{CRDsOnly: true}); err != nil {
		return e, err
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "admin"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: ns}}},
	} {
		if err := c.Create(ctx, obj); err != nil {
			return e, err
		}
	}
	// The controller-manager's garbage collector finds new resources by
	// discovery every 30 s. Until it watches Applications and Releases it
	// verifies every owner reference to them with a GET (1.2 per app), a
	// cost no cluster where berth was installed before its Applications
	// pays: wait for it, as such a cluster would have.
	fmt.Fprintf(o.Out, "waiting %s for the garbage collector to discover berth's CRDs\n", gcDiscovery)
	select {
	case <-ctx.Done():
		return e, ctx.Err()
	case <-time.After(gcDiscovery):
	}
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("bench-secret"), 0o600); err != nil {
		return e, err
	}
	hookURL := fmt.Sprintf("http://127.0.0.1:%d/hooks/generic", ports[1])
	agentLog, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return e, err
	}
	e.cleanups = append(e.cleanups, func() { _ = agentLog.Close() })
	//nolint:gosec,noctx // the binary is berth itself; the process is stopped below
	agent := exec.Command(o.Binary, "agent", "--kubeconfig", conn.Kubeconfig, "--leader-elect=false",
		"--metrics-bind-address=0", "--pprof-bind-address", os.Getenv("BERTH_BENCH_PPROF"), "--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[2]),
		"--webhook-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--webhook-secret-file", secret,
		"--cache-dir", filepath.Join(dir, "agent-cache"), "--default-interval", "10m", "--concurrency", strconv.Itoa(o.concurrency()))
	agent.Stdout, agent.Stderr = agentLog, agentLog
	agent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := agent.Start(); err != nil {
		return e, err
	}
	e.cleanups = append(e.cleanups, func() { _ = agent.Process.Signal(syscall.SIGTERM); _ = agent.Wait() })
	time.Sleep(time.Second)
	e.work, e.repoURL, e.hookURL, e.c, e.cfg = work, repoURL, hookURL, c, cfg
	e.agentPID, e.agentLog = agent.Process.Pid, agentLog.Name()
	return e, nil
}
