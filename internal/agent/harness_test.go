package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/cli"
	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) {
	// The test binary doubles as a separate agent process for tests that
	// kill the agent (see startChildAgent), and as the render workers of
	// every agent, in this process or a child one (which hands its
	// workers a minimal environment, without childAgentEnv).
	if os.Getenv(childAgentEnv) != "" || len(os.Args) > 1 && os.Args[1] == "render-worker" {
		os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
	}
	testenv.Main(m)
}

func installCRDs(t *testing.T, env *testenv.Env) { testenv.InstallCRDs(t, env) }

type fixture struct {
	t       *testing.T
	env     *testenv.Env
	ns      string
	c       client.Client
	git     *testenv.GitServer
	wt      *testenv.WorkTree
	hookURL string
	secret  string
	// secretFile holds the webhook HMAC secret of the last agent started.
	secretFile string

	agentStops []context.CancelFunc
	// agentDone yields, per agent started, what its Run returned (kept
	// there once read, for the next reader).
	agentDone []chan error
	// agentConfig, when set, is the agent's identity instead of the
	// sandbox's admin (see TestAgentRunsWithItsInstalledRBAC).
	agentConfig *rest.Config
	// concurrency, when set, is the agents' --concurrency.
	concurrency int
	// trusted makes the fixture's namespace one of the agents'
	// --trusted-namespaces.
	trusted bool
}

type fixtureOptions struct {
	leaderElect bool
	noAgent     bool
	// concurrency, when set, is the agents' --concurrency.
	concurrency int
	// trusted makes the fixture's namespace one of the agents'
	// --trusted-namespaces.
	trusted bool
}

func newFixture(t *testing.T, fo ...fixtureOptions) *fixture {
	t.Helper()
	var o fixtureOptions
	if len(fo) > 0 {
		o = fo[0]
	}
	env := testenv.Sandbox(t)
	installCRDs(t, env)
	f := &fixture{t: t, env: env, ns: env.Namespace(t), secret: "webhook-s3cret", concurrency: o.concurrency, trusted: o.trusted}
	c, err := client.New(env.Config, client.Options{Scheme: agent.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	// Runs after the agents stop and before the namespace is deleted: the
	// Applications' cleanup finalizer would hold the namespace in
	// Terminating, with no agent left to remove it.
	t.Cleanup(func() {
		var list berthv1.ApplicationList
		if c.List(context.Background(), &list, client.InNamespace(f.ns)) != nil {
			return
		}
		for i := range list.Items {
			_ = c.Patch(context.Background(), &list.Items[i], client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
		}
	})
	ctx := context.Background()
	// The deployer may write in its namespace only.
	must(t, c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: f.ns}}))
	must(t, c.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "deployer-admin", Namespace: f.ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: f.ns}},
	}))
	must(t, c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody", Namespace: f.ns}}))

	f.git = testenv.NewGitServer(t, testenv.WithBasicAuth("reader", "pw"))
	f.git.CreateRepo(t, "apps")
	f.wt = f.git.Clone(t, "apps")
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git-creds", Namespace: f.ns},
		StringData: map[string]string{"username": "reader", "password": "pw"}}))
	if !o.noAgent {
		f.hookURL = f.startAgent(o.leaderElect, nil)
	}
	return f
}

// wideAccount creates service account "wide" in the fixture's namespace,
// bound to cluster-admin (removed with the test): for Applications that
// write cluster-scoped objects or other namespaces.
func (f *fixture) wideAccount() {
	f.t.Helper()
	ctx := context.Background()
	must(f.t, f.c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "wide", Namespace: f.ns}}))
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "wide-" + f.ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "wide", Namespace: f.ns}},
	}
	must(f.t, f.c.Create(ctx, crb))
	f.t.Cleanup(func() { _ = f.c.Delete(context.Background(), crb) })
}

// startAgent runs the real agent in process, restricted to the fixture's
// namespace, and returns its webhook URL.
func (f *fixture) startAgent(leaderElect bool, elected chan<- struct{}) string {
	f.t.Helper()
	return f.startAgentIn("", leaderElect, elected)
}

// startAgentIn is startAgent for an agent that runs "in" pod (an object of
// the fixture's namespace): it labels that pod while it leads.
func (f *fixture) startAgentIn(pod string, leaderElect bool, elected chan<- struct{}) string {
	t := f.t
	t.Helper()
	port := freePort(t)
	secretFile := filepath.Join(t.TempDir(), "secret")
	must(t, os.WriteFile(secretFile, []byte(f.secret+"\n"), 0o600))
	f.secretFile = secretFile
	opts := agent.DefaultOptions()
	opts.RESTConfig = f.env.Config
	if f.agentConfig != nil {
		opts.RESTConfig = f.agentConfig
	}
	opts.MetricsAddr, opts.ProbeAddr = "0", "0"
	opts.WebhookAddr = fmt.Sprintf("127.0.0.1:%d", port)
	opts.WebhookSecretFile = secretFile
	tokenFile := filepath.Join(t.TempDir(), "gitlab-token")
	must(t, os.WriteFile(tokenFile, []byte(f.secret+"-gitlab\n"), 0o600))
	opts.WebhookGitLabTokenFile = tokenFile
	opts.LeaderElect = leaderElect
	opts.LeaderElectionNamespace = f.ns
	opts.PodName = pod
	opts.WatchNamespace = f.ns
	opts.CacheDir = t.TempDir()
	opts.DefaultInterval = 2 * time.Second
	if f.concurrency > 0 {
		opts.Concurrency = f.concurrency
	}
	if f.trusted {
		opts.TrustedNamespaces = []string{f.ns}
	}
	opts.Elected = elected
	// Charts and overlays render in worker processes, as in a cluster:
	// by default this test binary, run as `berth render-worker` (see
	// TestMain).
	ready := make(chan struct{})
	opts.Ready = ready
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	must(t, err)
	log := funcr.New(func(prefix, args string) { fmt.Fprintln(logFile, prefix, args) }, funcr.Options{Verbosity: 1})
	go func() { done <- agent.Run(ctx, opts, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			done <- err
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Logf("agent stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop within 30s")
		}
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			lines := strings.Split(string(b), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("agent log (tail):\n%s", strings.Join(lines, "\n"))
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent exited at start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("agent not ready after 30s")
	}
	f.agentStops = append(f.agentStops, cancel)
	f.agentDone = append(f.agentDone, done)
	return "http://" + opts.WebhookAddr
}

// stopAgent stops the i-th agent started and waits until it has stopped:
// nothing of it acts after this returns.
func (f *fixture) stopAgent(i int) {
	f.t.Helper()
	f.agentStops[i]()
	select {
	case err := <-f.agentDone[i]:
		f.agentDone[i] <- err
	case <-time.After(30 * time.Second):
		f.t.Fatal("agent did not stop within 30s")
	}
}

// waitEvent waits up to 30 s for an event with reason on Application app
// and returns its message ("" if none came).
func (f *fixture) waitEvent(app, reason string) string {
	f.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		var evs corev1.EventList
		must(f.t, f.c.List(context.Background(), &evs, client.InNamespace(f.ns)))
		for _, e := range evs.Items {
			if e.Reason == reason && e.InvolvedObject.Name == app {
				return e.Message
			}
		}
	}
	return ""
}

// editAndWaitHealed changes the greeting of ConfigMap name by hand and
// waits up to 30 s for Git's value, want, to be back.
func (f *fixture) editAndWaitHealed(name, want string) {
	f.t.Helper()
	var c corev1.ConfigMap
	f.get(&c, name)
	c.Data["greeting"] = "kubectl edit"
	must(f.t, f.c.Update(context.Background(), &c))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		f.get(&c, name)
		if c.Data["greeting"] == want {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("manual edit of %s not healed after 30s: %v", name, c.Data)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// createApp creates an Application on the fixture's repository.
func (f *fixture) createApp(name, path string, mutate ...func(*berthv1.Application)) *berthv1.Application {
	f.t.Helper()
	app := &berthv1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec: berthv1.ApplicationSpec{
			Source: berthv1.GitSource{
				URL: f.git.RepoURL("apps"), Branch: "main", Path: path,
				SecretRef: &berthv1.LocalObjectReference{Name: "git-creds"},
				Interval:  &metav1.Duration{Duration: 2 * time.Second},
			},
			Namespace:          f.ns,
			ServiceAccountName: "deployer",
			Environment:        "staging",
		},
	}
	for _, m := range mutate {
		m(app)
	}
	must(f.t, f.c.Create(context.Background(), app))
	return app
}

// berth runs the berth CLI in this process against the sandbox, in the
// fixture's namespace, and returns its exit code, stdout and stderr.
func (f *fixture) berth(args ...string) (int, string, string) {
	f.t.Helper()
	var out, errOut strings.Builder
	args = append(args, "-n", f.ns, "--kubeconfig", filepath.Join(f.env.Dir, "kubeconfig"))
	code := cli.Main(context.Background(), args, cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

// waitGone polls until the object name of obj's kind is gone from the
// fixture's namespace.
func (f *fixture) waitGone(obj client.Object, name string, timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f.c.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: name}, obj)
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%T %s still there after %s (err %v, finalizers %v, deleting since %v)", obj, name, timeout, err, obj.GetFinalizers(), obj.GetDeletionTimestamp())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitApp polls the Application until cond holds.
func (f *fixture) waitApp(name string, timeout time.Duration, what string, cond func(*berthv1.Application) bool) *berthv1.Application {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	app := &berthv1.Application{}
	for {
		err := f.c.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: name}, app)
		if err == nil && cond(app) {
			return app
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("Application %s: %s not reached after %s; status: %s", name, what, timeout, describeStatus(app))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitRejected waits until the Application has fetched sha and is Stalled
// for reason, and returns the Stalled message.
func (f *fixture) waitRejected(name, sha, reason string) string {
	f.t.Helper()
	app := f.waitApp(name, 60*time.Second, reason, func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return a.Status.LastFetchedRevision == sha && s != nil && s.Status == metav1.ConditionTrue && s.Reason == reason
	})
	return condition(app, berthv1.ConditionStalled).Message
}

func describeStatus(app *berthv1.Application) string {
	var parts []string
	parts = append(parts, fmt.Sprintf("applied=%s fetched=%s health=%s sync=%s", app.Status.LastAppliedRevision, app.Status.LastFetchedRevision, app.Status.Health, app.Status.Sync))
	for _, c := range app.Status.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, "; ")
}

func ready(app *berthv1.Application) bool {
	for _, c := range app.Status.Conditions {
		if c.Type == berthv1.ConditionReady && c.Status == metav1.ConditionTrue && c.ObservedGeneration == app.Generation {
			return true
		}
	}
	return false
}

func condition(app *berthv1.Application, typ string) *metav1.Condition {
	for i := range app.Status.Conditions {
		if app.Status.Conditions[i].Type == typ {
			return &app.Status.Conditions[i]
		}
	}
	return nil
}

func appliedReady(sha string) func(*berthv1.Application) bool {
	return func(a *berthv1.Application) bool { return a.Status.LastAppliedRevision == sha && ready(a) }
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// get reads an object, reporting whether it exists.
func (f *fixture) get(obj client.Object, name string) bool {
	f.t.Helper()
	err := f.c.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false
	}
	must(f.t, err)
	return true
}

// persistentVolume creates a 1Gi PersistentVolume (storage class "manual")
// for the fixture, deleted at the end, so claims can bind in the sandbox.
func (f *fixture) persistentVolume() string {
	f.t.Helper()
	return f.namedVolume("pv-" + f.ns)
}

// namedVolume creates PersistentVolume name (class manual, 1Gi), deleted
// when the test ends.
func (f *fixture) namedVolume(name string) string {
	f.t.Helper()
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName:       "manual",
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + name}},
		},
	}
	must(f.t, f.c.Create(context.Background(), pv))
	f.t.Cleanup(func() { _ = f.c.Delete(context.Background(), pv) })
	return name
}
