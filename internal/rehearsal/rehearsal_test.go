package rehearsal_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/controller/application"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/rehearsal"
	"github.com/berth-dev/berth/internal/release"
	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fixture is an Application with releases recorded directly in the store,
// as the agent would have recorded them.
type fixture struct {
	env   *testenv.Env
	c     client.Client
	ns    string
	app   *berthv1.Application
	store *release.Store
}

// setup creates Application name in a fresh namespace. With sa, it writes
// as service account "deployer", bound to the ClusterRole edit there.
func setup(t *testing.T, name string, sa bool) *fixture {
	t.Helper()
	env := testenv.Sandbox(t)
	testenv.InstallCRDs(t, env)
	c, err := client.New(env.Config, client.Options{Scheme: agent.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := env.Namespace(t)
	app := &berthv1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       berthv1.ApplicationSpec{Source: berthv1.GitSource{URL: "http://example.test/r.git"}, Namespace: ns},
	}
	if sa {
		app.Spec.ServiceAccountName = "deployer"
		mustCreate(t, c, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns}})
		mustCreate(t, c, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "deployer-edit", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "deployer", Namespace: ns}},
		})
	}
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, c: c, ns: ns, app: app, store: &release.Store{Client: c}}
}

// another returns a fixture for a second Application, name, in f's
// namespace, with the same service account.
func (f *fixture) another(t *testing.T, name string) *fixture {
	t.Helper()
	app := f.app.DeepCopy()
	app.ObjectMeta = metav1.ObjectMeta{Name: name, Namespace: f.ns}
	app.Status = berthv1.ApplicationStatus{}
	mustCreate(t, f.c, app)
	g := *f
	g.app = app
	return &g
}

func mustCreate(t *testing.T, c client.Client, o client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

// release records objs as the next release with outcome health, stamped
// like the agent stamps a revision, and makes it the current release.
func (f *fixture) release(t *testing.T, health string, objs ...*unstructured.Unstructured) *berthv1.Release {
	t.Helper()
	ctx := context.Background()
	var mos []manifest.Object
	for _, u := range objs {
		mos = append(mos, manifest.Object{Object: u, Source: manifest.Source{File: "app.yaml"}})
	}
	namespaced := func(gvk schema.GroupVersionKind) bool {
		return gvk.Kind != "Namespace" && gvk.Kind != "ClusterRole"
	}
	if err := application.Prepare(mos, f.app, namespaced); err != nil {
		t.Fatal(err)
	}
	rel, err := f.store.Create(ctx, f.app, release.Input{Commit: strings.Repeat("c", 40), Trigger: berthv1.TriggerCommit, Renderer: "plain", Objects: mos})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.SetOutcome(ctx, rel, health, "test"); err != nil {
		t.Fatal(err)
	}
	f.app.Status.CurrentRelease = rel.Spec.Number
	if err := f.c.Status().Update(ctx, f.app); err != nil {
		t.Fatal(err)
	}
	return rel
}

func (f *fixture) run(t *testing.T, opts rehearsal.Options) (*rehearsal.Result, string) {
	t.Helper()
	var out bytes.Buffer
	opts.App = types.NamespacedName{Namespace: f.ns, Name: f.app.Name}
	opts.Out = &out
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := rehearsal.Run(ctx, f.c, f.env.Config, opts)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatalf("drill could not run: %v", err)
	}
	return res, out.String()
}

// assertGone checks that the drill deleted its scratch namespace.
func (f *fixture) assertGone(t *testing.T, res *rehearsal.Result) {
	t.Helper()
	if res.Namespace == "" {
		t.Fatal("no scratch namespace recorded")
	}
	err := f.c.Get(context.Background(), client.ObjectKey{Name: res.Namespace}, &corev1.Namespace{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("scratch namespace %s after the drill: %v, want it gone", res.Namespace, err)
	}
}

func obj(y map[string]any) *unstructured.Unstructured { return &unstructured.Unstructured{Object: y} }

func deployment(image string, progressDeadline int64) *unstructured.Unstructured {
	spec := map[string]any{
		"replicas": int64(1),
		"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
		"template": map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
			"spec": map[string]any{"containers": []any{map[string]any{
				"name": "web", "image": image,
				"envFrom": []any{map[string]any{"configMapRef": map[string]any{"name": "web-config"}}},
			}}},
		},
	}
	if progressDeadline > 0 {
		spec["progressDeadlineSeconds"] = progressDeadline
	}
	return obj(map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "web"}, "spec": spec})
}

func configMap(name, value string, immutable bool) *unstructured.Unstructured {
	u := obj(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}, "data": map[string]any{"value": value}})
	if immutable {
		u.Object["immutable"] = true
	}
	return u
}

func service() *unstructured.Unstructured {
	return obj(map[string]any{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": "web"}, "spec": map[string]any{
		"selector": map[string]any{"app": "web"},
		"ports":    []any{map[string]any{"port": int64(80), "targetPort": int64(8080)}},
	}})
}

// goodPair records release 1 (web:1) and release 2 (web:2, new config,
// one more ConfigMap) as the agent would after two healthy syncs.
func goodPair(t *testing.T, f *fixture) {
	t.Helper()
	f.release(t, berthv1.ReleaseSuperseded, deployment("example.test/web:1", 0), configMap("web-config", "1", false), service())
	f.release(t, berthv1.ReleaseHealthy, deployment("example.test/web:2", 0), configMap("web-config", "2", false), service(), configMap("web-extra", "x", false))
}

func TestGoodPairPasses(t *testing.T) {
	t.Parallel()
	f := setup(t, "shop", true)
	goodPair(t, f)
	start := time.Now()
	res, out := f.run(t, rehearsal.Options{Timeout: time.Minute})
	t.Logf("drill took %s", time.Since(start))
	if !res.Passed() {
		t.Fatalf("drill failed: %v", res.Failure)
	}
	if res.From != 1 || res.To != 2 {
		t.Errorf("drill rehearsed %d -> %d, want the defaults 1 -> 2", res.From, res.To)
	}
	if want := "system:serviceaccount:" + f.ns + ":deployer"; !res.Impersonated || res.Identity != want {
		t.Errorf("drill wrote as %q (impersonated %v), want %s", res.Identity, res.Impersonated, want)
	}
	if len(res.Steps) != 4 {
		t.Fatalf("%d steps, want 4", len(res.Steps))
	}
	if n := res.Steps[2].Changes.Count(apply.Deleted); n != 1 {
		t.Errorf("rollback pruned %d objects, want 1 (web-extra): %+v", n, res.Steps[2].Changes)
	}
	for _, want := range []string{"1/4 deploy release 1", "2/4 upgrade to release 2", "3/4 roll back to release 1", "4/4 clean up", "rehearsal passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	f.assertGone(t, res)
	// The real namespace is untouched: the drill wrote only to its own.
	if err := f.c.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: "web"}, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment"}}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment web in the Application's namespace: %v, want none", err)
	}
}

func TestNeverReadyUpgradeFailsAtStep2(t *testing.T) {
	t.Parallel()
	f := setup(t, "shop", true)
	f.release(t, berthv1.ReleaseHealthy, deployment("example.test/web:1", 0), configMap("web-config", "1", false), service())
	f.release(t, berthv1.ReleaseFailed, deployment("example.test/web:2-never-ready", 0), configMap("web-config", "2", false), service())
	res, out := f.run(t, rehearsal.Options{Timeout: 5 * time.Second})
	if res.Passed() || res.Failure.Step != rehearsal.StepUpgrade {
		t.Fatalf("failure = %v, want step 2", res.Failure)
	}
	var ue *rehearsal.UnhealthyError
	if !errors.As(res.Failure, &ue) || !strings.Contains(res.Failure.Reason, "apps/Deployment "+res.Namespace+"/web") {
		t.Errorf("reason = %q, want the unhealthy Deployment web", res.Failure.Reason)
	}
	if !strings.Contains(out, "rehearsal failed at step 2 (upgrade to release 2)") {
		t.Errorf("output lacks the failed step")
	}
	// The way back is still rehearsed, as the agent would take it now.
	if len(res.Steps) != 4 || res.Steps[2].Err != nil {
		t.Errorf("steps = %+v, want the rollback rehearsed and passing", res.Steps)
	}
	f.assertGone(t, res)
}

func TestOneWayChangeFailsAtStep3(t *testing.T) {
	t.Parallel()
	f := setup(t, "shop", true)
	// Release 2 makes the ConfigMap immutable with new data: the upgrade
	// works, the way back cannot change it again.
	f.release(t, berthv1.ReleaseHealthy, deployment("example.test/web:1", 0), configMap("web-config", "1", false), service())
	f.release(t, berthv1.ReleaseHealthy, deployment("example.test/web:2", 0), configMap("web-config", "2", true), service())
	res, _ := f.run(t, rehearsal.Options{Timeout: time.Minute})
	if res.Passed() || res.Failure.Step != rehearsal.StepRollback {
		t.Fatalf("failure = %v, want step 3", res.Failure)
	}
	if !strings.Contains(res.Failure.Reason, "ConfigMap "+res.Namespace+"/web-config") || !strings.Contains(res.Failure.Reason, "immutable") {
		t.Errorf("reason = %q, want the immutable ConfigMap", res.Failure.Reason)
	}
	f.assertGone(t, res)
}

func TestDigestMismatchFailsDrill(t *testing.T) {
	t.Parallel()
	f := setup(t, "shop", true)
	goodPair(t, f)
	rel, err := f.store.Get(context.Background(), f.ns, "shop", 1)
	if err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: rel.Spec.Manifests[0].SecretName}, sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["manifests.gz"][len(sec.Data["manifests.gz"])/2] ^= 0xff
	if err := f.c.Update(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	res, out := f.run(t, rehearsal.Options{})
	if res.Passed() || res.Failure.Step != rehearsal.StepRead || !errors.Is(res.Failure, release.ErrDigestMismatch) {
		t.Fatalf("failure = %v, want a digest mismatch before step 1", res.Failure)
	}
	if res.Namespace != "" || !strings.Contains(out, "release 1 (shop-r1)") {
		t.Errorf("namespace %q, output %q: want no scratch namespace and the release named", res.Namespace, out)
	}
}

func TestClusterScopedObjectsAreOnlyDryRun(t *testing.T) {
	t.Parallel()
	f := setup(t, "shop", false) // no service account: the caller's (admin) credentials
	role := func(verb string) *unstructured.Unstructured {
		return obj(map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": "rehearse-" + f.ns},
			"rules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"configmaps"}, "verbs": []any{verb}}}})
	}
	ns := obj(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": f.ns}})
	other := configMap("elsewhere", "1", false)
	other.SetNamespace("default")
	f.release(t, berthv1.ReleaseHealthy, ns, role("get"), other, configMap("web-config", "1", false))
	f.release(t, berthv1.ReleaseHealthy, ns, role("list"), other, configMap("web-config", "2", false))
	res, out := f.run(t, rehearsal.Options{Timeout: time.Minute})
	if !res.Passed() {
		t.Fatalf("drill failed: %v", res.Failure)
	}
	if res.Impersonated || !strings.Contains(out, "permissions are not rehearsed") {
		t.Errorf("impersonated %v, want the caller's credentials, said so", res.Impersonated)
	}
	want := "ClusterRole rehearse-" + f.ns
	if got := strings.Join(res.DryRunOnly, ","); !strings.Contains(got, "rbac.authorization.k8s.io/"+want) || !strings.Contains(got, "Namespace "+f.ns) || !strings.Contains(got, "ConfigMap default/elsewhere") {
		t.Errorf("dry-run only = %v, want the ClusterRole, the Namespace and the other namespace's ConfigMap", res.DryRunOnly)
	}
	if err := f.c.Get(context.Background(), client.ObjectKey{Name: "rehearse-" + f.ns}, &rbacv1.ClusterRole{}); !apierrors.IsNotFound(err) {
		t.Errorf("ClusterRole after the drill: %v, want never created", err)
	}
	if err := f.c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "elsewhere"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap default/elsewhere after the drill: %v, want never created", err)
	}
	f.assertGone(t, res)
}

func TestAgentPermissionsAreRehearsed(t *testing.T) {
	t.Parallel()
	f := setup(t, "shop", true)
	// The agent's account may edit its namespace but not create ClusterRoles.
	role := obj(map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": "rehearse-" + f.ns}})
	f.release(t, berthv1.ReleaseHealthy, configMap("web-config", "1", false))
	f.release(t, berthv1.ReleaseHealthy, configMap("web-config", "2", false), role)
	res, _ := f.run(t, rehearsal.Options{Timeout: time.Minute})
	if res.Passed() || res.Failure.Step != rehearsal.StepUpgrade || !strings.Contains(res.Failure.Reason, "permission denied") {
		t.Fatalf("failure = %v, want step 2 denied", res.Failure)
	}
	f.assertGone(t, res)
}

func TestKeepLeavesNamespaceAndExpiredOnesAreSwept(t *testing.T) {
	t.Parallel()
	f := setup(t, "shop", true)
	f.release(t, berthv1.ReleaseHealthy, configMap("web-config", "1", false))
	f.release(t, berthv1.ReleaseHealthy, configMap("web-config", "2", false))
	ctx := context.Background()
	kept, _ := f.run(t, rehearsal.Options{Keep: true, Timeout: time.Minute})
	if !kept.Passed() {
		t.Fatalf("drill failed: %v", kept.Failure)
	}
	ns := &corev1.Namespace{}
	if err := f.c.Get(ctx, client.ObjectKey{Name: kept.Namespace}, ns); err != nil {
		t.Fatalf("kept namespace: %v", err)
	}
	if ns.Labels[rehearsal.AppLabel] != "shop" || ns.Labels[rehearsal.AppNamespaceLabel] != f.ns || ns.Annotations[rehearsal.ExpiresAnnotation] == "" {
		t.Errorf("scratch namespace labels %v, annotations %v", ns.Labels, ns.Annotations)
	}
	t.Cleanup(func() { _ = f.c.Delete(context.Background(), ns) })
	ns.Annotations[rehearsal.ExpiresAnnotation] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	if err := f.c.Update(ctx, ns); err != nil {
		t.Fatal(err)
	}
	res, out := f.run(t, rehearsal.Options{Timeout: time.Minute})
	if !res.Passed() || !strings.Contains(out, "deleted expired scratch namespace "+kept.Namespace) {
		t.Errorf("second drill: %v; want it to delete the expired namespace", res.Failure)
	}
	if err := f.c.Get(ctx, client.ObjectKey{Name: kept.Namespace}, ns); err == nil && ns.DeletionTimestamp == nil {
		t.Errorf("expired scratch namespace %s still there", kept.Namespace)
	}
}
