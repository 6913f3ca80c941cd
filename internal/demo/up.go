package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/examples"
	"github.com/berth-dev/berth/internal/apps"
	"github.com/berth-dev/berth/internal/gitserver"
	"github.com/berth-dev/berth/internal/install"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Options configure Up.
type Options struct {
	// SandboxDir is the sandbox's state directory.
	SandboxDir string
	// CacheDir is the sandbox binary cache ("" for the default).
	CacheDir string
	// Progress receives progress lines.
	Progress io.Writer
	// Interactive shows a live build progress line.
	Interactive bool
	// Timeout bounds the wait for every Application to be Ready.
	Timeout time.Duration
	// Binary is the berth executable that runs the Git server and the
	// agent; empty means this process's own executable.
	Binary string
}

// Namespace holds the demo's Applications.
const Namespace = "berth-demo"

// app is one example Application.
type app struct{ name, path, env, dest string }

var demoApps = []app{
	{"guestbook", "guestbook", "staging", "demo-staging"},
	{"shop-staging", "shop/overlays/staging", "staging", "demo-staging"},
	{"shop-production", "shop/overlays/production", "production", "demo-production"},
	{"hello-staging", "hello-chart", "staging", "demo-staging"},
	{"hello-production", "hello-chart", "production", "demo-production"},
}

// Up starts everything and returns once every Application is Ready.
func Up(ctx context.Context, o Options) (*State, error) {
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
	}
	say := func(f string, a ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, f, a...)
		}
	}
	old, err := load(o.SandboxDir)
	if err != nil {
		return nil, err
	} else if old != nil {
		for name, p := range old.Processes {
			if p.alive() {
				return nil, fmt.Errorf("berth is already up (%s has PID %d); run `berth down` first", name, p.PID)
			}
		}
	}
	bins, err := sandbox.Build(ctx, sandbox.BuildOptions{CacheDir: o.CacheDir, Progress: o.Progress, Interactive: o.Interactive})
	if err != nil {
		return nil, err
	}
	st := &State{Dir: o.SandboxDir, Processes: map[string]Proc{}}
	if s, err := sandbox.Inspect(ctx, o.SandboxDir); err == nil && s.Healthy() {
		say("reusing the running sandbox in %s\n", o.SandboxDir)
		// Whoever started it stops it: an earlier Up, whose Down has
		// not run since, or someone else (`berth sandbox up`).
		st.setStartedSandbox(old != nil && old.startedSandbox())
	} else {
		say("starting the sandbox in %s\n", o.SandboxDir)
		if _, err := sandbox.Up(ctx, sandbox.UpOptions{Dir: o.SandboxDir, Binaries: bins, Progress: o.Progress}); err != nil {
			return nil, err
		}
		st.setStartedSandbox(true)
	}
	// Recorded before anything else starts: a Down after a failed Up
	// stops the sandbox this Up started.
	if err := st.save(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			for _, p := range st.Processes {
				p.stop()
			}
		}
	}()
	self := o.Binary
	if self == "" {
		if self, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("locating the berth binary: %w", err)
		}
		if self, err = filepath.EvalSymlinks(self); err != nil {
			return nil, fmt.Errorf("locating the berth binary: %w", err)
		}
	}
	logs := filepath.Join(o.SandboxDir, "logs")

	// Git server with the example repository.
	gitRoot := filepath.Join(o.SandboxDir, "git")
	ports, reused := samePorts(old)
	if !reused {
		if ports, err = sandbox.FreePorts(4); err != nil {
			return nil, err
		}
	}
	st.Ports = ports
	gitAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	st.GitURL = "http://" + gitAddr + "/gitops.git"
	st.WebhookURL = fmt.Sprintf("http://127.0.0.1:%d/hooks/generic", ports[1])
	st.MetricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[2])
	secretFile := filepath.Join(o.SandboxDir, "webhook-secret")
	if err := ensureSecret(secretFile); err != nil {
		return nil, err
	}
	if err := populate(ctx, gitRoot, self, st.GitURL, st.WebhookURL, secretFile); err != nil {
		return nil, err
	}
	if err := st.start("git-server", self, []string{"git-server", "--root", gitRoot, "--addr", gitAddr}, filepath.Join(logs, "git-server.log")); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, st.GitURL+"/info/refs?service=git-upload-pack"); err != nil {
		return nil, fmt.Errorf("git server: %w (log: %s)", err, st.Processes["git-server"].Log)
	}
	say("  %-24s %s\n", "git server", st.GitURL)

	// Cluster: CRDs, namespaces, deployer service accounts.
	conn := apps.Connection{Kubeconfig: sandbox.KubeconfigPath(o.SandboxDir)}
	c, cfg, _, err := conn.Client()
	if err != nil {
		return nil, err
	}
	if _, err := install.Apply(ctx, cfg, install.Options{CRDsOnly: true}); err != nil {
		return nil, fmt.Errorf("installing CRDs: %w", err)
	}
	for _, ns := range []string{Namespace, "demo-staging", "demo-production"} {
		if err := ensureNamespace(ctx, c, ns); err != nil {
			return nil, err
		}
	}

	// Agent.
	agentArgs := []string{"agent", "--kubeconfig", conn.Kubeconfig, "--leader-elect=false",
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[2]),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[3]),
		"--webhook-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--webhook-secret-file", secretFile,
		"--cache-dir", filepath.Join(o.SandboxDir, "agent-cache"),
		"--default-interval", "30s",
		// The demo's Applications live in berth-demo and deploy into the
		// environments' namespaces.
		"--trusted-namespaces", Namespace}
	if err := st.start("agent", self, agentArgs, filepath.Join(logs, "agent.log")); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[3])); err != nil {
		return nil, fmt.Errorf("agent: %w (log: %s)", err, st.Processes["agent"].Log)
	}
	say("  %-24s webhooks %s, metrics %s\n", "agent", st.WebhookURL, st.MetricsURL)

	for _, a := range demoApps {
		if err := ensureApp(ctx, c, a, st.GitURL); err != nil {
			return nil, err
		}
	}
	st.Started = time.Now()
	if err := st.save(); err != nil {
		return nil, err
	}
	say("waiting for %d Applications to be Ready\n", len(demoApps))
	if err := waitReady(ctx, c, o.Timeout); err != nil {
		return nil, fmt.Errorf("%w (agent log: %s)", err, st.Processes["agent"].Log)
	}
	ok = true
	return st, nil
}

func (s *State) start(name, bin string, args []string, logPath string) error {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s log: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...) //nolint:noctx // outlives this command; stopped by Down
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { _ = cmd.Wait() }()
	s.Processes[name] = Proc{PID: cmd.Process.Pid, Start: sandbox.StartTime(cmd.Process.Pid), Binary: bin, Args: args, Log: logPath}
	return s.save()
}

func ensureSecret(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(hex.EncodeToString(b)), 0o600)
}

// populate creates the example repository (once) and its notify hook.
func populate(ctx context.Context, root, self, repoURL, hookURL, secretFile string) error {
	bare := filepath.Join(root, "gitops.git")
	if _, err := os.Stat(bare); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(root, 0o755); err != nil {
			return err
		}
		if _, err := gitserver.CreateRepo(ctx, root, "gitops"); err != nil {
			return err
		}
		work, err := os.MkdirTemp("", "berth-demo-repo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		err = fs.WalkDir(examples.Repo, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := examples.Repo.ReadFile(p)
			if err != nil {
				return err
			}
			dst := filepath.Join(work, filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			return os.WriteFile(dst, b, 0o644)
		})
		if err != nil {
			return fmt.Errorf("writing the example repository: %w", err)
		}
		for _, args := range [][]string{
			{"init", "--quiet", "--initial-branch=main"},
			{"add", "-A"},
			{"-c", "user.name=berth", "-c", "user.email=berth@example.invalid", "commit", "--quiet", "-m", "Example GitOps repository"},
			{"push", "--quiet", bare, "main"},
		} {
			if err := gitserver.Run(ctx, work, args...); err != nil {
				return err
			}
		}
	}
	hook := fmt.Sprintf("#!/bin/sh\n# Tell the berth agent about every push (berth up).\nexec %q notify --url %q --secret-file %q %q >/dev/null 2>&1\n",
		self, hookURL, secretFile, repoURL)
	return os.WriteFile(filepath.Join(bare, "hooks", "post-receive"), []byte(hook), 0o755)
}

func ensureNamespace(ctx context.Context, c client.Client, ns string) error {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns}},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "berth-deployer", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "admin"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: ns}},
		},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s: %w", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
		}
	}
	return nil
}

func ensureApp(ctx context.Context, c client.Client, a app, url string) error {
	obj := &berthv1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: a.name, Namespace: Namespace},
		Spec: berthv1.ApplicationSpec{
			Source:             berthv1.GitSource{URL: url, Branch: "main", Path: a.path},
			Namespace:          a.dest,
			Environment:        a.env,
			ServiceAccountName: "deployer",
		},
	}
	if strings.HasPrefix(a.name, "hello-") {
		obj.Spec.Helm = &berthv1.HelmSpec{ReleaseName: "hello"}
	}
	existing := &berthv1.Application{}
	err := c.Get(ctx, types.NamespacedName{Namespace: Namespace, Name: a.name}, existing)
	if apierrors.IsNotFound(err) {
		return c.Create(ctx, obj)
	}
	if err != nil {
		return err
	}
	existing.Spec = obj.Spec
	return c.Update(ctx, existing)
}

func waitReady(ctx context.Context, c client.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		list, err := apps.List(ctx, c, Namespace)
		if err != nil {
			return err
		}
		var waiting []string
		for _, a := range list {
			r := meta.FindStatusCondition(a.Status.Conditions, berthv1.ConditionReady)
			if r == nil || r.Status != metav1.ConditionTrue {
				msg := "not reconciled yet"
				if r != nil {
					msg = r.Message
				}
				waiting = append(waiting, a.Name+": "+msg)
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not every Application is Ready after %s: %s", timeout, strings.Join(waiting, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func waitHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %s", url, resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not answering after 30s: %v", last)
}

// samePorts returns the ports the last Up used when all are free again.
func samePorts(old *State) ([]int, bool) {
	if old == nil || len(old.Ports) != 4 {
		return nil, false
	}
	for _, p := range old.Ports {
		var lc net.ListenConfig
		l, err := lc.Listen(context.Background(), "tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return nil, false
		}
		_ = l.Close()
	}
	return old.Ports, true
}
