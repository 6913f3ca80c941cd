package testenv_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestNamespacePerTest(t *testing.T) {
	env := testenv.Sandbox(t)
	ns := env.Namespace(t)
	got, err := env.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("namespace %s: %v", ns, err)
	}
	if !strings.HasPrefix(ns, "testnamespacepertest-") || got.Labels["berth.dev/test"] != "true" {
		t.Errorf("namespace %s labels %v, want a name after the test and the test label", ns, got.Labels)
	}
}

func TestGitServerWithCredentials(t *testing.T) {
	g := testenv.NewGitServer(t, testenv.WithBasicAuth("reader", "s3cret"))
	g.CreateRepo(t, "apps")

	wt := g.Clone(t, "apps")
	sha := wt.Write("app/deploy.yaml", "kind: ConfigMap\n").CommitAndPush("add app")

	dst := filepath.Join(t.TempDir(), "noauth")
	out, err := testenv.GitErr("", "clone", g.RepoURL("apps"), dst)
	if err == nil {
		t.Fatal("clone without credentials succeeded, want 401")
	}
	if !strings.Contains(out, "could not read Username") && !strings.Contains(out, "401") {
		t.Errorf("clone without credentials failed for another reason: %s", out)
	}
	for _, c := range []struct {
		user, pass string
		want       int
	}{{"", "", http.StatusUnauthorized}, {"reader", "wrong", http.StatusUnauthorized}, {"reader", "s3cret", http.StatusOK}} {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, g.RepoURL("apps")+"/info/refs?service=git-upload-pack", nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("info/refs as %q/%q = %d, want %d", c.user, c.pass, resp.StatusCode, c.want)
		}
	}
	if _, err := testenv.GitErr("", "clone", strings.Replace(g.AuthRepoURL("apps"), "s3cret", "wrong", 1), dst); err == nil {
		t.Fatal("clone with a wrong password succeeded")
	}

	dst = filepath.Join(t.TempDir(), "auth")
	testenv.Git(t, "", "clone", "--quiet", g.AuthRepoURL("apps"), dst)
	head := strings.TrimSpace(testenv.Git(t, dst, "rev-parse", "HEAD"))
	if head != sha {
		t.Errorf("cloned HEAD = %s, want pushed %s", head, sha)
	}
	b, err := os.ReadFile(filepath.Join(dst, "app", "deploy.yaml"))
	if err != nil || string(b) != "kind: ConfigMap\n" {
		t.Errorf("cloned file = %q, %v", b, err)
	}
}

func TestGitServerOpenAndRestart(t *testing.T) {
	g := testenv.NewGitServer(t)
	g.CreateRepo(t, "open")
	g.Clone(t, "open").Write("a.txt", "1").CommitAndPush("one")

	g.Stop()
	if _, err := testenv.GitErr("", "ls-remote", g.RepoURL("open")); err == nil {
		t.Fatal("ls-remote succeeded against a stopped server")
	}
	g.Start(t)
	out := testenv.Git(t, "", "ls-remote", g.RepoURL("open"))
	if !strings.Contains(out, "refs/heads/main") {
		t.Errorf("ls-remote after restart = %q, want refs/heads/main", out)
	}
}

func TestRegistryPushPullByDigest(t *testing.T) {
	reg := testenv.NewRegistry(t)
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(reg.Host+"/team/web:1.0", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(tag)
	if err != nil {
		t.Fatalf("resolving tag: %v", err)
	}
	if desc.Digest != want {
		t.Errorf("tag resolves to %s, want %s", desc.Digest, want)
	}
	ref, err := name.NewDigest(reg.Host+"/team/web@"+want.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull by digest: %v", err)
	}
	got, err := pulled.Digest()
	if err != nil || got != want {
		t.Errorf("pulled digest = %s (%v), want %s", got, err, want)
	}
	layers, err := pulled.Layers()
	if err != nil || len(layers) != 2 {
		t.Errorf("pulled %d layers (%v), want 2", len(layers), err)
	}

	missing, _ := name.NewDigest(reg.Host+"/team/web@sha256:"+strings.Repeat("0", 64), name.Insecure)
	if _, err := remote.Image(missing); err == nil {
		t.Error("pulling an unknown digest succeeded")
	}
}
