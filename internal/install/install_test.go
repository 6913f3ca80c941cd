package install_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/install"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// `berth install --apply` on a real API server: every object is accepted
// (the namespace enforces the restricted pod security level on the
// agent's own pods), the agent's Deployment rolls out two replicas, the
// webhook Service selects the leader only, and applying again changes
// nothing.
func TestApplyInstallsTheAgent(t *testing.T) {
	env := testenv.Sandbox(t)
	ctx := context.Background()
	o := install.Options{Namespace: "berth-install-test", Image: "example.test/berth:1", Replicas: 2, DefaultServiceAccount: "deployer"}
	cs, err := install.Apply(ctx, env.Config, o)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	data, err := install.Manifests(o)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifest.Parse("install.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	// The sandbox may be shared with other packages: take away what the
	// install created, except the CRDs (which may have been there, and
	// others use).
	t.Cleanup(func() { uninstall(t, env, objs) })
	// The CRDs may be there already; the rest is new.
	applied := cs.Count(apply.Created) + cs.Count(apply.Unchanged) + cs.Count(apply.Configured)
	if len(cs.Entries) != len(objs) || applied != len(objs) || cs.Count(apply.Created) < len(objs)-2 {
		t.Fatalf("install: %s for %d objects in the manifests", cs.Summary(), len(objs))
	}
	kc, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	var d *appsv1.Deployment
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		d, err = kc.AppsV1().Deployments(o.Namespace).Get(ctx, "berth-agent", metav1.GetOptions{})
		if err == nil && d.Status.AvailableReplicas == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's Deployment did not roll out: %v %+v", err, d)
		}
	}
	pod := d.Spec.Template.Spec
	args := map[string]bool{}
	for _, a := range pod.Containers[0].Args {
		args[a] = true
	}
	for _, want := range []string{"--pod-name=$(POD_NAME)", "--webhook-secret-file=/etc/berth/webhook/hmac", "--webhook-gitlab-token-file=/etc/berth/webhook/gitlab-token", "--default-service-account=deployer", "--trusted-namespaces=berth-install-test"} {
		if !args[want] {
			t.Errorf("agent args %v lack %s", pod.Containers[0].Args, want)
		}
	}
	var secretVolume *corev1.SecretVolumeSource
	for _, v := range pod.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "berth-webhook" {
			secretVolume = v.Secret
		}
	}
	if secretVolume == nil || secretVolume.Optional == nil || !*secretVolume.Optional {
		t.Errorf("webhook Secret volume = %+v, want berth-webhook, optional", secretVolume)
	}
	// The root filesystem is read-only: everything the agent writes goes to
	// a volume, its temporary files (an SSH source's known_hosts) too.
	c := pod.Containers[0]
	writable := map[string]bool{}
	for _, m := range c.VolumeMounts {
		writable[m.MountPath] = !m.ReadOnly
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem ||
		!writable["/tmp"] || !writable["/cache"] {
		t.Errorf("agent container: read-only root %v, mounts %v; want a read-only root with /tmp and /cache writable", c.SecurityContext, c.VolumeMounts)
	}
	svc, err := kc.CoreV1().Services(o.Namespace).Get(ctx, "berth-webhooks", metav1.GetOptions{})
	if err != nil || svc.Spec.Selector[berthv1.LeaderLabel] != "true" {
		t.Errorf("webhook Service selector = %v (%v), want the leader label", svc.Spec.Selector, err)
	}
	again, err := install.Apply(ctx, env.Config, o)
	if err != nil || again.Changed() {
		t.Errorf("applying the install again: %s, %v; want nothing changed", again.Summary(), err)
	}
}

// uninstall deletes objs from the sandbox, CRDs excepted.
func uninstall(t *testing.T, env *testenv.Env, objs []manifest.Object) {
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Error(err)
		return
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(env.Client.Discovery()))
	for _, o := range objs {
		u := o.Object
		if u.GetKind() == "CustomResourceDefinition" {
			continue
		}
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("uninstall %s: %v", o.ID(), err)
			continue
		}
		ri := dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		if m.Scope.Name() != meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource)
		}
		if err := ri.Delete(context.Background(), u.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("uninstall %s: %v", o.ID(), err)
		}
	}
}

// `berth uninstall` on a sandbox of its own (it deletes berth's CRDs, which
// the shared one keeps for other packages): the agent's Deployment goes
// first, then the finalizer of every Application, then the rest; the
// objects an Application applied stay, and nothing is left Terminating.
func TestUninstallKeepsWhatApplicationsApplied(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := testenv.OwnSandbox(t, sandbox.UpOptions{Nodes: 1}).Config
	o := install.Options{Namespace: "berth-system", Image: "example.test/berth:1", Replicas: 1}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The namespace as an install before berth.dev/created-by left it:
	// applied by berth's field manager, with the pod security label only.
	old := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": "berth-system", "labels": map[string]any{"pod-security.kubernetes.io/enforce": "restricted"}}}}
	if _, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Apply(ctx, "berth-system", old, metav1.ApplyOptions{FieldManager: apply.FieldManager}); err != nil {
		t.Fatal(err)
	}
	cs, err := install.Apply(ctx, cfg, o)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if slices.ContainsFunc(cs.Entries, func(e apply.Entry) bool { return e.Action == apply.Skipped }) {
		t.Errorf("upgrading an install: %s, want its namespace taken as the install's", cs.Summary())
	}
	// An Application holding the finalizer, and an object it applied.
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	applied := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "shop",
		Labels: map[string]string{berthv1.OwnerNameLabel: "web", berthv1.OwnerNamespaceLabel: "shop"}}}
	if _, err := kc.CoreV1().ConfigMaps("shop").Create(ctx, applied, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apps := dyn.Resource(schema.GroupVersionResource{Group: "berth.dev", Version: "v1alpha1", Resource: "applications"})
	app := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "berth.dev/v1alpha1", "kind": "Application",
		"metadata": map[string]any{"name": "web", "namespace": "shop", "finalizers": []any{berthv1.CleanupFinalizer}},
		"spec":     map[string]any{"namespace": "shop", "source": map[string]any{"url": "https://git.example.test/shop.git"}},
	}}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		_, err = apps.Namespace("shop").Create(ctx, app, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("creating the Application: %v", err)
		}
	}

	res, err := install.Uninstall(ctx, cfg, o, time.Minute)
	if err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if res.Released != 1 {
		t.Errorf("released %d Applications, want 1", res.Released)
	}
	for _, want := range []string{"apps/Deployment berth-system/berth-agent", "apiextensions.k8s.io/CustomResourceDefinition applications.berth.dev", "Namespace berth-system"} {
		if !slices.Contains(res.Deleted, want) {
			t.Errorf("deleted %v, want %s among them", res.Deleted, want)
		}
	}
	// The CRD, and with it the Application, is gone: nothing hangs.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		_, err := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).Get(ctx, "applications.berth.dev", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Application CRD is still there 60s after the uninstall (err %v): an Application holds it", err)
		}
	}
	if _, err := kc.CoreV1().ConfigMaps("shop").Get(ctx, "settings", metav1.GetOptions{}); err != nil {
		t.Errorf("what the Application applied is gone: %v", err)
	}
	if _, err := kc.RbacV1().ClusterRoles().Get(ctx, "berth-agent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the agent's ClusterRole: %v, want it deleted", err)
	}
	// Again: nothing left to do, no error.
	if res, err := install.Uninstall(ctx, cfg, o, time.Minute); err != nil || res.Released != 0 {
		t.Errorf("uninstalling again: %+v, %v", res, err)
	}

	// Installed into a namespace that was there already (someone else's):
	// its labels are left alone, and uninstalling keeps it, with what it
	// holds.
	// An install before berth.dev/created-by applied its label over it,
	// as it did over any namespace: that does not make it the install's.
	shopNS := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": "shop", "labels": map[string]any{"pod-security.kubernetes.io/enforce": "restricted"}}}}
	if _, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Apply(ctx, "shop", shopNS, metav1.ApplyOptions{FieldManager: apply.FieldManager}); err != nil {
		t.Fatal(err)
	}
	shop := install.Options{Namespace: "shop", Image: "example.test/berth:1", Replicas: 1}
	cs, err = install.Apply(ctx, cfg, shop)
	if err != nil {
		t.Fatalf("install into shop: %v", err)
	}
	if !slices.ContainsFunc(cs.Entries, func(e apply.Entry) bool { return e.ID == "Namespace shop" && e.Action == apply.Skipped }) {
		t.Errorf("install into an existing namespace: %s, want the namespace skipped", cs.Summary())
	}
	ns, err := kc.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	if err != nil || ns.Annotations["berth.dev/created-by"] != "" {
		t.Errorf("namespace shop after the install: %v, annotations %v; want it left as it was", err, ns.Annotations)
	}
	if res, err = install.Uninstall(ctx, cfg, shop, time.Minute); err != nil || !slices.Contains(res.Kept, "Namespace shop") || slices.Contains(res.Deleted, "Namespace shop") {
		t.Fatalf("uninstall from shop: %+v, %v; want the namespace kept", res, err)
	}
	if ns, err := kc.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{}); err != nil || ns.DeletionTimestamp != nil {
		t.Errorf("namespace shop after the uninstall: %v (deleting: %v)", err, ns.DeletionTimestamp)
	}
	if _, err := kc.CoreV1().ConfigMaps("shop").Get(ctx, "settings", metav1.GetOptions{}); err != nil {
		t.Errorf("what namespace shop held is gone: %v", err)
	}

	// --tenant-namespaces: its grants follow the flag from one install to
	// the next, and uninstall takes them away.
	tenantBindings := func() []string {
		l, err := kc.RbacV1().RoleBindings("").List(ctx, metav1.ListOptions{LabelSelector: "berth.dev/created-by=berth-install"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rb := range l.Items {
			out = append(out, rb.Namespace)
		}
		slices.Sort(out)
		return out
	}
	// The last uninstall's CRDs are gone first (an install meeting them
	// Terminating would wait for them to be established).
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		l, err := crds.List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(l.Items, func(u unstructured.Unstructured) bool { return strings.HasSuffix(u.GetName(), ".berth.dev") }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("berth's CRDs are still there 60s after the uninstall")
		}
	}
	ten := install.Options{Namespace: "berth-tenants", Image: "example.test/berth:1", Replicas: 1, TenantNamespaces: []string{"shop", "default"}}
	for _, step := range []struct {
		tenants []string
		want    string
	}{
		{[]string{"shop", "default"}, "berth-tenants,default,shop"},
		{[]string{"shop"}, "berth-tenants,shop"},
		{nil, ""},
		{[]string{"shop"}, "berth-tenants,shop"},
	} {
		ten.TenantNamespaces = step.tenants
		if _, err := install.Apply(ctx, cfg, ten); err != nil {
			t.Fatalf("install with tenants %v: %v", step.tenants, err)
		}
		if got := strings.Join(tenantBindings(), ","); got != step.want {
			t.Errorf("tenants %v: tenant RoleBindings in %q, want %q", step.tenants, got, step.want)
		}
		_, err := kc.RbacV1().ClusterRoles().Get(ctx, "berth-agent-tenant", metav1.GetOptions{})
		if (err == nil) != (len(step.tenants) > 0) {
			t.Errorf("tenants %v: ClusterRole berth-agent-tenant: %v", step.tenants, err)
		}
	}
	if _, err := install.Uninstall(ctx, cfg, install.Options{Namespace: "berth-tenants"}, time.Minute); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if got := tenantBindings(); len(got) != 0 {
		t.Errorf("tenant RoleBindings left after uninstall in %v", got)
	}
	if _, err := kc.RbacV1().ClusterRoles().Get(ctx, "berth-agent-tenant", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ClusterRole berth-agent-tenant after uninstall: %v, want it deleted", err)
	}
}
