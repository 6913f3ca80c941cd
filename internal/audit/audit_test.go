package audit

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/berth-dev/berth/internal/install"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func createSA(t *testing.T, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func clusterBind(t *testing.T, cs kubernetes.Interface, name, role string, sub rbacv1.Subject) {
	t.Helper()
	ctx := context.Background()
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{sub},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

func TestAuditRBACFindsOverPrivilegedCIAccount(t *testing.T) {
	ctx := context.Background()
	env := testenv.Sandbox(t)
	ns := env.Namespace(t)
	cs := env.Client
	createSA(t, cs, ns, "github-actions-deployer")
	createSA(t, cs, ns, "web")
	createSA(t, cs, ns, "ci-reader")
	clusterBind(t, cs, ns+"-gha-admin", "cluster-admin", rbacv1.Subject{Kind: "ServiceAccount", Name: "github-actions-deployer", Namespace: ns})
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "web-edit", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "web", Namespace: ns}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	view := rb.DeepCopy()
	view.Name, view.RoleRef.Name, view.Subjects[0].Name = "ci-view", "view", "ci-reader"
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, view, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	rep, err := RBAC(ctx, cs, RBACOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gha := Subject{Kind: "ServiceAccount", Namespace: ns, Name: "github-actions-deployer"}
	web := Subject{Kind: "ServiceAccount", Namespace: ns, Name: "web"}

	foundCluster := false
	for _, w := range rep.ClusterWide {
		if w.Subject == gha && w.CI {
			foundCluster = true
		}
	}
	if !foundCluster {
		t.Errorf("cluster-wide writers lack %s: %+v", gha, rep.ClusterWide)
	}
	var inNS []Subject
	for _, n := range rep.Namespaces {
		if n.Namespace == ns {
			for _, w := range n.Writers {
				inNS = append(inNS, w.Subject)
			}
		}
	}
	if len(inNS) != 1 || inNS[0] != web {
		t.Errorf("writers in %s = %v, want only %s (a view binding is not write access)", ns, inNS, web)
	}
	var ghaProblems []string
	for _, f := range rep.CI {
		switch f.Subject {
		case gha:
			ghaProblems = f.Problems
		case web:
			t.Errorf("%s is not a CI account but was flagged", web)
		case Subject{Kind: "ServiceAccount", Namespace: ns, Name: "ci-reader"}:
			t.Errorf("read-only CI account flagged: %v", f.Problems)
		}
	}
	joined := strings.Join(ghaProblems, "\n")
	for _, want := range []string{"is bound to cluster-admin via ClusterRoleBinding " + ns + "-gha-admin", "has cluster-wide write access", "wildcard"} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems of %s lack %q:\n%s", gha, want, joined)
		}
	}
	if rep.HiddenSystem == 0 {
		t.Error("no system subjects hidden: the system filter did nothing")
	}
}

func etcdEndpoint(t *testing.T, dir string) []string {
	t.Helper()
	st, err := sandbox.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"http://127.0.0.1:" + strconv.Itoa(st.Ports.EtcdClient)}
}

func apiserverArgs(t *testing.T, dir string) []string {
	t.Helper()
	st, err := sandbox.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st.Processes[sandbox.APIServer].Args
}

// encryptionSandbox starts a second sandbox whose apiserver encrypts Secrets.
func encryptionSandbox(t *testing.T) string {
	t.Helper()
	return testenv.OwnSandbox(t, sandbox.UpOptions{EncryptionAtRest: true}).Dir
}

func TestAuditClusterEncryptionAtRest(t *testing.T) {
	ctx := context.Background()
	plain := testenv.Sandbox(t)
	st, err := sandbox.Load(plain.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.EncryptionAtRest {
		t.Fatalf("the shared sandbox %s encrypts Secrets; this test needs one that does not", plain.Dir)
	}
	encDir := encryptionSandbox(t)
	encCfg, err := sandbox.RESTConfig(encDir)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		dir        string
		opts       ClusterOptions
		want       Status
		wantMethod string
		wantDetail string
	}{
		{"plain via etcd", plain.Dir, ClusterOptions{EtcdEndpoints: etcdEndpoint(t, plain.Dir)}, Fail, "etcd canary", "plain text in etcd"},
		{"encrypted via etcd", encDir, ClusterOptions{EtcdEndpoints: etcdEndpoint(t, encDir)}, Pass, "etcd canary", "provider aescbc"},
		{"plain via apiserver flags", plain.Dir, ClusterOptions{APIServerArgs: apiserverArgs(t, plain.Dir)}, Fail, "apiserver encryption configuration", "without --encryption-provider-config"},
		{"encrypted via apiserver config", encDir, ClusterOptions{APIServerArgs: apiserverArgs(t, encDir)}, Pass, "apiserver encryption configuration", "encrypts secrets with aescbc"},
		{"nothing visible", encDir, ClusterOptions{}, Unknown, "", "no etcd access given"},
		{"etcd unreachable", plain.Dir, ClusterOptions{EtcdEndpoints: []string{"http://127.0.0.1:1"}}, Unknown, "", "etcd canary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := plain.Config
			if tt.dir == encDir {
				cfg = encCfg
			}
			rep, err := Cluster(ctx, cfg, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			c, ok := rep.Get(CheckEncryptionAtRest)
			if !ok || c.Status != tt.want || !strings.HasPrefix(c.Method, tt.wantMethod) || !strings.Contains(c.Detail, tt.wantDetail) {
				t.Fatalf("check = %+v, want status %s, method %q, detail containing %q", c, tt.want, tt.wantMethod, tt.wantDetail)
			}
		})
	}

	t.Run("canary is deleted", func(t *testing.T) {
		secs, err := plain.Client.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{LabelSelector: "berth.dev/audit=canary"})
		if err != nil || len(secs.Items) != 0 {
			t.Fatalf("canary Secrets left behind: %d (%v)", len(secs.Items), err)
		}
	})
}

func TestAuditClusterAnonymousAndAgent(t *testing.T) {
	ctx := context.Background()
	env := testenv.Sandbox(t)
	ns := env.Namespace(t)
	createSA(t, env.Client, ns, "agent")

	rep, err := Cluster(ctx, env.Config, ClusterOptions{AgentServiceAccount: ns + "/agent"})
	if err != nil {
		t.Fatal(err)
	}
	anon, _ := rep.Get(CheckAnonymousAuth)
	// The sandbox's apiserver keeps Kubernetes' default --anonymous-auth=true.
	if anon.Status != Warn || !strings.Contains(anon.Detail, "system:anonymous") {
		t.Errorf("anonymous = %+v, want warn", anon)
	}
	agent, _ := rep.Get(CheckAgentRBAC)
	if agent.Status != Warn || !strings.Contains(agent.Detail, "no RBAC bindings") {
		t.Errorf("agent without bindings = %+v, want warn", agent)
	}

	clusterBind(t, env.Client, ns+"-agent-admin", "cluster-admin", rbacv1.Subject{Kind: "ServiceAccount", Name: "agent", Namespace: ns})
	clusterBind(t, env.Client, ns+"-anon-view", "view", rbacv1.Subject{Kind: "User", Name: "system:anonymous", APIGroup: rbacv1.GroupName})
	rep, err = Cluster(ctx, env.Config, ClusterOptions{AgentServiceAccount: ns + "/agent"})
	if err != nil {
		t.Fatal(err)
	}
	agent, _ = rep.Get(CheckAgentRBAC)
	if agent.Status != Fail || !strings.Contains(agent.Detail, "bound to cluster-admin") {
		t.Errorf("agent with cluster-admin = %+v, want fail", agent)
	}
	anon, _ = rep.Get(CheckAnonymousAuth)
	if anon.Status != Fail || !strings.Contains(anon.Detail, ns+"-anon-view") {
		t.Errorf("anonymous with a view binding = %+v, want fail naming the binding", anon)
	}
	if !rep.Failed() {
		t.Error("report with failing checks not Failed()")
	}
	missing, err := Cluster(ctx, env.Config, ClusterOptions{AgentServiceAccount: ns + "/nope"})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := missing.Get(CheckAgentRBAC); c.Status != Unknown {
		t.Errorf("missing agent SA = %+v, want unknown", c)
	}
}

// The agent's RBAC as `berth install` renders it passes; a grant beyond
// it fails, naming the grant.
func TestAuditAgentRBACAgainstTheInstall(t *testing.T) {
	ctx := context.Background()
	env := testenv.Sandbox(t)
	ns := env.Namespace(t)
	createSA(t, env.Client, ns, "berth-agent")
	clusterRules, nsRules, err := install.AgentRules(ns)
	if err != nil {
		t.Fatal(err)
	}
	clusterRole := func(name string, rules []rbacv1.PolicyRule) {
		t.Helper()
		if _, err := env.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = env.Client.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}
	sub := rbacv1.Subject{Kind: "ServiceAccount", Name: "berth-agent", Namespace: ns}
	clusterRole(ns+"-berth-agent", clusterRules)
	clusterBind(t, env.Client, ns+"-berth-agent", ns+"-berth-agent", sub)
	if _, err := env.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "leader-election"}, Rules: nsRules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "leader-election"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "leader-election"}, Subjects: []rbacv1.Subject{sub}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Create on Secrets without the policy that limits it fails.
	rep, err := Cluster(ctx, env.Config, ClusterOptions{AgentServiceAccount: ns + "/berth-agent"})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := rep.Get(CheckAgentRBAC); c.Status != Fail || !strings.Contains(c.Detail, "no ValidatingAdmissionPolicy limits that") {
		t.Fatalf("agent RBAC without the Secrets policy = %+v, want fail", c)
	}
	// With it, patch on Applications without the policy that limits it
	// to the cleanup finalizer fails.
	installPolicies(t, env.Client, ns, "berth-agent-secrets")
	rep, err = Cluster(ctx, env.Config, ClusterOptions{AgentServiceAccount: ns + "/berth-agent"})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := rep.Get(CheckAgentRBAC); c.Status != Fail || !strings.Contains(c.Detail, "may patch Applications, and no ValidatingAdmissionPolicy limits that to the berth.dev/cleanup finalizer") ||
		strings.Contains(c.Detail, "may create Secrets") {
		t.Fatalf("agent RBAC without the Applications policy = %+v, want fail naming only that policy", c)
	}
	installPolicies(t, env.Client, ns, "berth-agent-applications")
	rep, err = Cluster(ctx, env.Config, ClusterOptions{AgentServiceAccount: ns + "/berth-agent"})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := rep.Get(CheckAgentRBAC); c.Status != Pass || !strings.Contains(c.Detail, "no more than `berth install` grants") {
		t.Fatalf("installed agent RBAC = %+v, want pass", c)
	}

	clusterRole(ns+"-deployer", []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"create"}}})
	clusterBind(t, env.Client, ns+"-deployer", ns+"-deployer", sub)
	rep, err = Cluster(ctx, env.Config, ClusterOptions{AgentServiceAccount: ns + "/berth-agent"})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := rep.Get(CheckAgentRBAC); c.Status != Fail || !strings.Contains(c.Detail, "create apps/deployments via ClusterRoleBinding "+ns+"-deployer") {
		t.Fatalf("agent that may create Deployments = %+v, want fail naming the grant", c)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(env.Client.RbacV1().ClusterRoleBindings().Delete(ctx, ns+"-deployer", metav1.DeleteOptions{}))

	// The same grant reaches the agent through the groups its tokens
	// carry, or its user name: those count too.
	for _, via := range []rbacv1.Subject{
		{Kind: "Group", Name: "system:serviceaccounts:" + ns, APIGroup: rbacv1.GroupName},
		{Kind: "Group", Name: "system:authenticated", APIGroup: rbacv1.GroupName},
		{Kind: "User", Name: "system:serviceaccount:" + ns + ":berth-agent", APIGroup: rbacv1.GroupName},
	} {
		name := ns + "-deployer-" + strings.ToLower(via.Kind)
		clusterBind(t, env.Client, name, ns+"-deployer", via)
		rep, err = Cluster(ctx, env.Config, ClusterOptions{AgentServiceAccount: ns + "/berth-agent"})
		must(err)
		if c, _ := rep.Get(CheckAgentRBAC); c.Status != Fail || !strings.Contains(c.Detail, "create apps/deployments via ClusterRoleBinding "+name) {
			t.Fatalf("agent that may create Deployments through %s %s = %+v, want fail naming the grant", via.Kind, via.Name, c)
		}
		must(env.Client.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{}))
	}
}

// installPolicies creates the named admission policies of berth install,
// and their bindings, for the agent in ns, under names unique to ns.
func installPolicies(t *testing.T, cs kubernetes.Interface, ns string, names ...string) {
	t.Helper()
	ctx := context.Background()
	data, err := install.Manifests(install.Options{Namespace: ns, Image: "example.test/berth:1", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifest.Parse("install.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if !slices.Contains(names, o.Object.GetName()) {
			continue
		}
		switch o.Object.GetKind() {
		case "ValidatingAdmissionPolicy":
			var p admissionregistrationv1.ValidatingAdmissionPolicy
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object.Object, &p); err != nil {
				t.Fatal(err)
			}
			p.Name += "-" + ns
			if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, &p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(context.Background(), p.Name, metav1.DeleteOptions{})
			})
		case "ValidatingAdmissionPolicyBinding":
			var b admissionregistrationv1.ValidatingAdmissionPolicyBinding
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object.Object, &b); err != nil {
				t.Fatal(err)
			}
			b.Name += "-" + ns
			b.Spec.PolicyName += "-" + ns
			if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, &b, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(context.Background(), b.Name, metav1.DeleteOptions{})
			})
		}
	}
}
