package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/release"
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRollbackRevertInGit runs `berth rollback --revert-in-git` against the
// sandbox (an Application and two Releases, no agent) and a real Git server
// behind basic auth: the rollback is requested and Git is restored, with the
// user's credentials, never the agent's.
func TestRollbackRevertInGit(t *testing.T) {
	env := testenv.Sandbox(t)
	testenv.InstallCRDs(t, env)
	ctx := context.Background()
	c, err := client.New(env.Config, client.Options{Scheme: agent.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t)

	const user, password = "alice", "alice-token-value"
	srv := testenv.NewGitServer(t, testenv.WithBasicAuth(user, password))
	srv.CreateRepo(t, "shop")
	wt := srv.Clone(t, "shop")
	good := wt.Write("README.md", "shop\n").Write("deploy/app.yaml", "image: shop:1\n").CommitAndPush("good")
	wt.Write("deploy/app.yaml", "image: shop:2\n").Write("deploy/extra.yaml", "x: 1\n").CommitAndPush("bad one")
	bad := wt.Write("deploy/app.yaml", "image: shop:3\n").Write("README.md", "shop, documented\n").CommitAndPush("bad two")

	// The agent's read-only credentials are wrong for pushing on purpose:
	// were they used, the push would fail.
	agentSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git-readonly", Namespace: ns},
		StringData: map[string]string{"username": user, "password": "read-only-agent-value"}}
	if err := c.Create(ctx, agentSecret); err != nil {
		t.Fatal(err)
	}
	app := &berthv1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: berthv1.ApplicationSpec{Namespace: ns, Source: berthv1.GitSource{
			URL: srv.RepoURL("shop"), Branch: "main", Path: "deploy", SecretRef: &berthv1.LocalObjectReference{Name: "git-readonly"},
		}},
	}
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	store := &release.Store{Client: c}
	r1, err := store.Create(ctx, app, release.Input{Commit: good, Trigger: berthv1.TriggerCommit, Renderer: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetOutcome(ctx, r1, berthv1.ReleaseHealthy, "ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Create(ctx, app, release.Input{Commit: bad, Trigger: berthv1.TriggerCommit, Renderer: "plain"}); err != nil {
		t.Fatal(err)
	}
	app.Status.CurrentRelease = 2
	if err := c.Status().Update(ctx, app); err != nil {
		t.Fatal(err)
	}

	pwFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badPwFile := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(badPwFile, []byte("wrong-token-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rollback := func(t *testing.T, extra ...string) (int, string, string) {
		t.Helper()
		// No agent runs here: nothing would answer the request.
		args := append([]string{"rollback", "shop", "-n", ns, "--kubeconfig", sandbox.KubeconfigPath(env.Dir), "--wait=false", "--revert-in-git", "--git-username", user}, extra...)
		return run(t, "", args...)
	}
	annotation := func(t *testing.T) string {
		t.Helper()
		got := &berthv1.Application{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, got); err != nil {
			t.Fatal(err)
		}
		return got.Annotations[berthv1.RollbackAnnotation]
	}
	gitHead := func(t *testing.T) string {
		t.Helper()
		testenv.Git(t, wt.Dir, "fetch", "--quiet", "origin")
		return strings.TrimSpace(testenv.Git(t, wt.Dir, "rev-parse", "origin/main"))
	}
	noSecret := func(t *testing.T, outs ...string) {
		t.Helper()
		for _, o := range outs {
			for _, s := range []string{password, "wrong-token-value", "read-only-agent-value"} {
				if strings.Contains(o, s) {
					t.Errorf("output shows a secret: %q", o)
				}
			}
		}
	}

	t.Run("wrong password", func(t *testing.T) {
		code, out, errOut := rollback(t, "--to", "1", "--git-password-file", badPwFile)
		noSecret(t, out, errOut)
		if code != 1 {
			t.Errorf("exit code = %d, want 1 (stdout %q, stderr %q)", code, out, errOut)
		}
		if !strings.Contains(out, "rollback of shop to release 1 requested") {
			t.Errorf("stdout = %q, want the rollback requested anyway", out)
		}
		if !strings.Contains(errOut, "Git was not reverted") || !strings.Contains(errOut, srv.RepoURL("shop")+` refused access as "alice"`) {
			t.Errorf("stderr = %q, want why Git was not reverted, naming the URL", errOut)
		}
		if a := annotation(t); !strings.HasPrefix(a, "1@") {
			t.Errorf("rollback annotation = %q, want a request for release 1", a)
		}
		if h := gitHead(t); h != bad {
			t.Errorf("Git head = %s, want %s untouched", h, bad)
		}
	})

	t.Run("reverted", func(t *testing.T) {
		before := annotation(t)
		code, out, errOut := rollback(t, "--git-password-file", pwFile)
		noSecret(t, out, errOut)
		if code != 0 {
			t.Fatalf("exit code = %d (stdout %q, stderr %q)", code, out, errOut)
		}
		if a := annotation(t); !strings.HasPrefix(a, "1@") || a == before {
			t.Errorf("rollback annotation = %q (before %q), want a new request for release 1", a, before)
		}
		head := gitHead(t)
		if !strings.Contains(out, "pushed "+head[:8]+" to branch main of "+srv.RepoURL("shop")) {
			t.Errorf("stdout = %q, want the pushed commit %s", out, head)
		}
		if parent := strings.TrimSpace(testenv.Git(t, wt.Dir, "rev-parse", head+"^")); parent != bad {
			t.Errorf("parent = %s, want %s", parent, bad)
		}
		tree := func(rev string) string { return strings.TrimSpace(testenv.Git(t, wt.Dir, "rev-parse", rev)) }
		if got, want := tree(head+":deploy"), tree(good+":deploy"); got != want {
			t.Errorf("deploy tree = %s, want release 1's %s", got, want)
		}
		if got := testenv.Git(t, wt.Dir, "show", head+":README.md"); got != "shop, documented\n" {
			t.Errorf("README.md outside the path = %q, want it untouched", got)
		}
		msg := testenv.Git(t, wt.Dir, "log", "-1", "--format=%B", head)
		for _, want := range []string{"berth: revert deploy to " + good[:8] + " (release 1)", "Berth-Application: " + ns + "/shop",
			"Berth-Release: 1", "Berth-Rolled-Back-From-Release: 2", "Berth-Restored-Commit: " + good} {
			if !strings.Contains(msg, want) {
				t.Errorf("commit message lacks %q:\n%s", want, msg)
			}
		}
	})

	t.Run("already reverted", func(t *testing.T) {
		before := gitHead(t)
		code, out, errOut := rollback(t, "--to", "1", "--git-password-file", pwFile)
		if code != 0 || !strings.Contains(out, "nothing pushed") {
			t.Errorf("exit code = %d, stdout %q, stderr %q; want nothing pushed", code, out, errOut)
		}
		if h := gitHead(t); h != before {
			t.Errorf("Git head moved from %s to %s", before, h)
		}
	})
}
