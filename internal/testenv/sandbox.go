package testenv

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/berth-dev/berth/internal/sandbox"
)

// SandboxEnvVar names the state directory of a running sandbox that test
// binaries share instead of starting their own.
const SandboxEnvVar = "BERTH_TEST_SANDBOX"

// Env is the sandbox used by one test binary.
type Env struct {
	// Dir is the sandbox's state directory.
	Dir string
	// Config is an admin client configuration.
	Config *rest.Config
	// Client is an admin clientset.
	Client kubernetes.Interface
}

var (
	shared    *Env
	sharedErr error
)

// Main runs the tests of m against a sandbox and exits. It reuses the sandbox
// in $BERTH_TEST_SANDBOX when set; otherwise it compiles (once, cached) and
// starts a private sandbox and stops it after the tests. When no sandbox can
// be had, the tests still run and every call to Sandbox fails the test with
// the reason, so nothing is skipped silently.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	var stop func()
	shared, stop, sharedErr = setup(ctx)
	if sharedErr != nil {
		fmt.Fprintf(os.Stderr, "testenv: no sandbox: %v\n", sharedErr)
	}
	code := m.Run()
	if stop != nil {
		stop()
	}
	return code
}

func setup(ctx context.Context) (*Env, func(), error) {
	if dir := os.Getenv(SandboxEnvVar); dir != "" {
		env, err := connect(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("$%s=%s: %w", SandboxEnvVar, dir, err)
		}
		return env, nil, nil
	}
	bins, err := sandbox.Build(ctx, sandbox.BuildOptions{Progress: os.Stderr})
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "berth-testenv-")
	if err != nil {
		return nil, nil, fmt.Errorf("creating sandbox directory: %w", err)
	}
	if _, err := sandbox.Up(ctx, sandbox.UpOptions{Dir: dir, Binaries: bins, DieWithParent: true}); err != nil {
		return nil, nil, err
	}
	stop := func() {
		_, _ = sandbox.Down(context.Background(), dir)
		_ = os.RemoveAll(dir)
	}
	env, err := connect(dir)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return env, stop, nil
}

// OwnSandbox starts a sandbox of t's own, with opts (Dir and Binaries are
// filled in: a fresh directory, the cached binaries), for a test that needs
// one the shared sandbox cannot be (other apiserver flags, or deleting
// berth's CRDs), and stops it when t ends. It returns its Env.
func OwnSandbox(t testing.TB, opts sandbox.UpOptions) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bins, err := sandbox.Build(ctx, sandbox.BuildOptions{Progress: os.Stderr})
	if err != nil {
		t.Fatalf("compiling the sandbox: %v", err)
	}
	opts.Dir, opts.Binaries, opts.DieWithParent = t.TempDir(), bins, true
	_, err = sandbox.Up(ctx, opts)
	t.Cleanup(func() { _, _ = sandbox.Down(context.Background(), opts.Dir) })
	if err != nil {
		t.Fatalf("starting a sandbox of the test's own: %v", err)
	}
	env, err := connect(opts.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func connect(dir string) (*Env, error) {
	cfg, err := sandbox.RESTConfig(dir)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("sandbox in %s does not answer: %w", dir, err)
	}
	return &Env{Dir: dir, Config: cfg, Client: cs}, nil
}

// Sandbox returns the test binary's sandbox, failing t when there is none.
func Sandbox(t testing.TB) *Env {
	t.Helper()
	switch {
	case sharedErr != nil:
		t.Fatalf("this test needs the Kubernetes sandbox, which could not be started: %v", sharedErr)
	case shared == nil:
		t.Fatal("this test needs the Kubernetes sandbox: call testenv.Main(m) from TestMain")
	}
	return shared
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a namespace for t, named after the test, and deletes it
// when the test ends.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	base := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = base[:40]
	}
	name := strings.Trim(base, "-") + "-" + rand.String(5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"berth.dev/test": "true"}}}
	if _, err := e.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = e.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}
