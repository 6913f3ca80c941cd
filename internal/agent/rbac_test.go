package agent_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/install"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/release"
)

// installRBAC creates the agent's ServiceAccount, roles, bindings and
// admission policy exactly as `berth install` renders them for namespace
// ns (cluster-scoped names get ns as a suffix, so that runs do not meet),
// and returns a client configuration authenticated as that ServiceAccount.
func installRBAC(t *testing.T, f *fixture, mutate ...func(*install.Options)) *rest.Config {
	t.Helper()
	ctx := context.Background()
	o := install.Options{Namespace: f.ns, Image: "example.test/berth:1", Replicas: 1}
	for _, m := range mutate {
		m(&o)
	}
	data, err := install.Manifests(o)
	must(t, err)
	objs, err := manifest.Parse("install.yaml", data)
	must(t, err)
	rename := map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true, "ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true}
	var created []string
	for _, o := range objs {
		u := o.Object
		switch u.GetKind() {
		case "ServiceAccount", "Role":
		case "RoleBinding":
			if kind, _, _ := unstructured.NestedString(u.Object, "roleRef", "kind"); kind == "ClusterRole" {
				name, _, _ := unstructured.NestedString(u.Object, "roleRef", "name")
				_ = unstructured.SetNestedField(u.Object, name+"-"+f.ns, "roleRef", "name")
			}
		case "ClusterRoleBinding":
			_ = unstructured.SetNestedField(u.Object, "berth-agent-"+f.ns, "roleRef", "name")
		case "ValidatingAdmissionPolicyBinding":
			policy, _, _ := unstructured.NestedString(u.Object, "spec", "policyName")
			_ = unstructured.SetNestedField(u.Object, policy+"-"+f.ns, "spec", "policyName")
		case "ClusterRole", "ValidatingAdmissionPolicy":
		default:
			continue // CRDs (installed), the Namespace, the agent's Deployment and Service
		}
		if rename[u.GetKind()] {
			u.SetName(u.GetName() + "-" + f.ns)
			obj := u.DeepCopy()
			t.Cleanup(func() { _ = f.c.Delete(context.Background(), obj) })
		}
		must(t, f.c.Create(ctx, u))
		created = append(created, u.GetKind())
	}
	for _, want := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		if !strings.Contains(strings.Join(created, ","), want) {
			t.Fatalf("the install manifests have no %s (created %v)", want, created)
		}
	}
	cs, err := kubernetes.NewForConfig(f.env.Config)
	must(t, err)
	exp := int64(3600)
	tok, err := cs.CoreV1().ServiceAccounts(f.ns).CreateToken(ctx, "berth-agent",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	must(t, err)
	cfg := rest.AnonymousClientConfig(f.env.Config)
	cfg.BearerToken = tok.Status.Token
	return cfg
}

// With --tenant-namespaces the agent impersonates, and reads Secrets, in
// those namespaces only (and the trusted ones and its own): not as
// kube-system's controllers, which would make it cluster-admin. It still
// does its whole job there.
func TestTenantScopedRBACBoundsImpersonation(t *testing.T) {
	f := newFixture(t, fixtureOptions{noAgent: true})
	f.agentConfig = installRBAC(t, f, func(o *install.Options) { o.TenantNamespaces = []string{f.ns} })
	ctx := context.Background()
	asAgent, err := kubernetes.NewForConfig(f.agentConfig)
	must(t, err)
	if _, err := asAgent.CoreV1().Secrets("kube-system").Get(ctx, "anything", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("reading a Secret in kube-system: %v, want Forbidden", err)
	}
	for _, user := range []string{"system:serviceaccount:kube-system:generic-garbage-collector", "system:serviceaccount:" + f.ns + "-other:deployer"} {
		cfg := rest.CopyConfig(f.agentConfig)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
		as, err := kubernetes.NewForConfig(cfg)
		must(t, err)
		if _, err := as.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "impersonate") {
			t.Errorf("impersonating %s: %v, want Forbidden to impersonate", user, err)
		}
	}
	cfg := rest.CopyConfig(f.agentConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + f.ns + ":deployer"}
	as, err := kubernetes.NewForConfig(cfg)
	must(t, err)
	if _, err := as.CoreV1().ConfigMaps(f.ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("impersonating the Application's account in its namespace: %v", err)
	}

	f.agentPod("berth-agent-0", nil)
	f.hookURL = f.startAgentIn("berth-agent-0", false, nil)
	v1 := f.wt.Write("app/deploy.yaml", deploy("1")).CommitAndPush("v1")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "v1 healthy", appliedReady(v1))
}

// The agent does its whole job — fetch, apply as the Application's
// account, release records with their manifests, the verdict, the
// rehearsal that reads the previous release back, an automatic rollback —
// with nothing more than
// the RBAC `berth install` gives it; and that RBAC does not let it write
// workloads, nor Secrets other than release manifests.
func TestAgentRunsWithItsInstalledRBAC(t *testing.T) {
	f := newFixture(t, fixtureOptions{noAgent: true})
	f.agentConfig = installRBAC(t, f)
	// The policy is enforced once the API server has loaded it.
	asAgent, err := kubernetes.NewForConfig(f.agentConfig)
	must(t, err)
	ctx := context.Background()
	opaque := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "minted", Namespace: f.ns}, StringData: map[string]string{"k": "v"}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = asAgent.CoreV1().Secrets(f.ns).Create(ctx, opaque, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), "release-manifests") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent may create an Opaque Secret: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	token := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "minted", Namespace: f.ns,
		Annotations: map[string]string{corev1.ServiceAccountNameKey: "deployer"}}, Type: corev1.SecretTypeServiceAccountToken}
	if _, err := asAgent.CoreV1().Secrets(f.ns).Create(ctx, token, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil {
		t.Fatal("the agent may create a service-account token Secret")
	}
	manifests := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "manifests", Namespace: f.ns}, Type: release.SecretType}
	if _, err := asAgent.CoreV1().Secrets(f.ns).Create(ctx, manifests, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("the agent may not create a release-manifests Secret: %v", err)
	}
	direct := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "direct", Namespace: f.ns}}
	if _, err := asAgent.CoreV1().ConfigMaps(f.ns).Create(ctx, direct, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the agent wrote a ConfigMap as itself: %v", err)
	}
	// Nor does it read, as itself, any Secret it is not given by name, or
	// any workload: what Applications own is read as their accounts.
	if _, err := asAgent.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the agent may list every Secret: %v", err)
	}
	if _, err := asAgent.AppsV1().Deployments(f.ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the agent may list Deployments as itself: %v", err)
	}

	// It runs "in" a pod, which it labels as leader with the install's Role.
	f.agentPod("berth-agent-0", nil)
	f.hookURL = f.startAgentIn("berth-agent-0", false, nil)
	v1 := f.wt.Write("app/deploy.yaml", deploy("1")).CommitAndPush("v1")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "v1 healthy", appliedReady(v1))
	v2 := f.wt.Write("app/deploy.yaml", deploy("2")).CommitAndPush("v2")
	f.waitApp("demo", 60*time.Second, "v2 healthy", appliedReady(v2))
	var rels []berthv1.Release
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		rels = f.releases("demo")
		if len(rels) == 2 && rels[0].Status.Health == berthv1.ReleaseHealthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("releases = %s", releaseSummary(rels))
		}
	}
	if wb := rels[0].Status.WayBack; wb == nil || wb.Status != "Verified" || wb.ToRelease != 1 {
		t.Fatalf("release 2's way back = %+v, want verified to release 1 (its manifests read back)", wb)
	}
	if got := image(f); got != "example.test/web:2" {
		t.Errorf("image = %q", got)
	}
	if got := f.leaders(); len(got) != 1 || got[0] != "berth-agent-0" {
		t.Errorf("pods labelled leader = %v, want berth-agent-0", got)
	}

	// A release that fails is rolled back automatically, under the same
	// rights: the rollback reads release 2's manifests, records itself and
	// marks release 3.
	bad := f.wt.Write("app/deploy.yaml", badDeploy()).CommitAndPush("v3 never ready")
	f.waitApp("demo", 90*time.Second, "rolled back and pinned", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.Pin.FromCommit == bad && ready(a)
	})
	rels = f.releases("demo")
	if len(rels) != 4 || rels[0].Spec.Trigger != berthv1.TriggerRollback || rels[0].Spec.RollbackOf != 2 || rels[1].Status.Health != berthv1.ReleaseRolledBack {
		t.Fatalf("releases after the rollback = %s", releaseSummary(rels))
	}
	if got := image(f); got != "example.test/web:2" {
		t.Errorf("image after the rollback = %q", got)
	}

	// It set its finalizer under these rights, and may change nothing else
	// of an Application.
	app := &berthv1.Application{}
	must(t, f.c.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "demo"}, app))
	if !slices.Contains(app.Finalizers, berthv1.CleanupFinalizer) {
		t.Fatalf("finalizers = %v, want %s", app.Finalizers, berthv1.CleanupFinalizer)
	}
	agentClient, err := client.New(f.agentConfig, client.Options{Scheme: agent.Scheme()})
	must(t, err)
	for what, patch := range map[string]string{
		"its service account": `{"spec":{"serviceAccountName":"cluster-admin-sa"}}`,
		"a label":             `{"metadata":{"labels":{"x":"y"}}}`,
		"another finalizer":   `{"metadata":{"finalizers":["berth.dev/cleanup","example.test/other"]}}`,
	} {
		err := agentClient.Patch(ctx, app.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(patch)))
		if err == nil || !strings.Contains(err.Error(), "changes nothing of an Application but its berth.dev/cleanup finalizer") {
			t.Errorf("the agent changing %s of an Application: %v, want the install's policy to refuse it", what, err)
		}
	}

	// Drift is seen at once under these rights: an app polled hourly is
	// healed through its watch (made as its account).
	healSHA := f.wt.Write("heal/cm.yaml", cm("healed", "git")).CommitAndPush("heal")
	f.createApp("heal", "heal", func(a *berthv1.Application) { a.Spec.Source.Interval = &metav1.Duration{Duration: time.Hour} })
	f.waitApp("heal", 60*time.Second, "applied", appliedReady(healSHA))
	f.editAndWaitHealed("healed", "git")

	// Deleted, an Application's objects are pruned under these rights (as
	// its account), and its finalizer is removed.
	must(t, f.c.Delete(ctx, &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "heal"}}))
	f.waitGone(&berthv1.Application{}, "heal", 60*time.Second)
	if f.get(&corev1.ConfigMap{}, "healed") {
		t.Error("ConfigMap healed is still there after its Application was deleted")
	}
}

// Whoever may create an Application picks the account its writes are made
// as. Outside the agent's trusted namespaces an Application deploys only
// into its own namespace, as a service account of it: one aiming at
// another namespace (whose accounts may be kube-system's controllers), or
// naming a full user, is refused before anything is fetched or written.
// From a trusted namespace the same Application deploys.
func TestAnApplicationDeploysIntoOtherNamespacesOnlyFromATrustedOne(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		f := newFixture(t, fixtureOptions{trusted: trusted})
		ctx := context.Background()
		other := f.env.Namespace(t)
		must(t, f.c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: other}}))
		must(t, f.c.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "deployer-admin", Namespace: other},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "admin"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: other}},
		}))
		sha := f.wt.Write("app/cm.yaml", cm("across", "hello")).Write("app2/cm.yaml", cm("asuser", "hello")).CommitAndPush("one")
		f.createApp("across", "app", func(a *berthv1.Application) { a.Spec.Namespace = other })
		f.createApp("asuser", "app2", func(a *berthv1.Application) {
			a.Spec.Namespace = other
			a.Spec.ServiceAccountName = "system:serviceaccount:" + other + ":deployer"
		})
		if trusted {
			f.waitApp("across", 60*time.Second, "applied into the other namespace", appliedReady(sha))
			f.waitApp("asuser", 60*time.Second, "applied as the named user", appliedReady(sha))
			for _, name := range []string{"across", "asuser"} {
				if err := f.c.Get(ctx, types.NamespacedName{Namespace: other, Name: name}, &corev1.ConfigMap{}); err != nil {
					t.Errorf("trusted: ConfigMap %s in %s: %v", name, other, err)
				}
			}
			continue
		}
		for app, want := range map[string]string{
			"across": "deploys only into " + f.ns,
			"asuser": "is a user name",
		} {
			a := f.waitApp(app, 30*time.Second, "refused", func(a *berthv1.Application) bool {
				s := condition(a, berthv1.ConditionStalled)
				return s != nil && s.Status == metav1.ConditionTrue && s.Reason == "CrossNamespaceRefused"
			})
			if msg := condition(a, berthv1.ConditionStalled).Message; !strings.Contains(msg, want) || !strings.Contains(msg, "--trusted-namespaces") {
				t.Errorf("%s: Stalled message %q, want it to say %q and name --trusted-namespaces", app, msg, want)
			}
			if a.Status.LastAppliedRevision != "" || len(a.Status.Inventory) != 0 {
				t.Errorf("%s: a refused Application applied %s: %v", app, a.Status.LastAppliedRevision, a.Status.Inventory)
			}
		}
		for _, name := range []string{"across", "asuser"} {
			err := f.c.Get(ctx, types.NamespacedName{Namespace: other, Name: name}, &corev1.ConfigMap{})
			if !apierrors.IsNotFound(err) {
				t.Errorf("untrusted: ConfigMap %s in %s: %v, want not found", name, other, err)
			}
		}
	}
}

// A prune that fails (here the account may not delete ConfigMaps) comes
// after the revision's writes: the objects the revision added are in the
// inventory all the same (else a later commit dropping them would leave
// them behind), and so are those the prune could not delete, which the
// retry prunes once it may.
func TestAFailedPruneKeepsTheInventory(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	must(t, f.c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "keeper", Namespace: f.ns}}))
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "keeper", Namespace: f.ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch"}}},
	}
	must(t, f.c.Create(ctx, role))
	must(t, f.c.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "keeper", Namespace: f.ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "keeper"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "keeper", Namespace: f.ns}},
	}))
	v1 := f.wt.Write("app/a.yaml", cm("a", "x")).Write("app/b.yaml", cm("b", "x")).CommitAndPush("a and b")
	f.createApp("demo", "app", func(a *berthv1.Application) { a.Spec.ServiceAccountName = "keeper" })
	f.waitApp("demo", 60*time.Second, "v1", appliedReady(v1))

	f.wt.Remove("app/b.yaml").Write("app/c.yaml", cm("c", "x")).CommitAndPush("b out, c in")
	names := func(a *berthv1.Application) string {
		var n []string
		for _, r := range a.Status.Inventory {
			n = append(n, r.Name)
		}
		return strings.Join(n, ",")
	}
	app := f.waitApp("demo", 60*time.Second, "the prune refused", func(a *berthv1.Application) bool {
		r := condition(a, berthv1.ConditionReady)
		return r != nil && r.Reason == "ApplyFailed" && strings.Contains(r.Message, "delete")
	})
	if !f.get(&corev1.ConfigMap{}, "c") || !f.get(&corev1.ConfigMap{}, "b") {
		t.Fatal("want c written and b still there")
	}
	if got := names(app); got != "a,b,c" {
		t.Errorf("inventory after the failed prune = %s, want a,b,c", got)
	}

	role.Rules[0].Verbs = append(role.Rules[0].Verbs, "delete")
	must(t, f.c.Update(ctx, role))
	app = f.waitApp("demo", 60*time.Second, "pruned on retry", func(a *berthv1.Application) bool {
		return ready(a) && names(a) == "a,c"
	})
	if f.get(&corev1.ConfigMap{}, "b") {
		t.Errorf("b is still there; inventory %s", names(app))
	}
}
