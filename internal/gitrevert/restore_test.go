package gitrevert

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-dev/berth/internal/testenv"
)

const (
	gitUser     = "alice"
	gitPassword = "s3cret-token-for-tests"
)

// fixture is a repository on a real Git server behind basic auth, holding a
// good commit and two bad ones on top, each touching the app's path.
type fixture struct {
	srv  *testenv.GitServer
	wt   *testenv.WorkTree
	good string // the commit of the release rolled back to
	bad  string // the branch head
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := testenv.NewGitServer(t, testenv.WithBasicAuth(gitUser, gitPassword))
	srv.CreateRepo(t, "app")
	wt := srv.Clone(t, "app")
	good := wt.Write("README.md", "hello\n").
		Write("deploy/shop/deployment.yaml", "image: shop:1\n").
		Write("deploy/shop/service.yaml", "port: 80\n").
		Write("deploy/other/config.yaml", "a: 1\n").
		CommitAndPush("good")
	wt.Write("deploy/shop/deployment.yaml", "image: shop:2\n").
		Write("deploy/shop/extra.yaml", "new: true\n").
		Write("deploy/other/config.yaml", "a: 2\n").
		CommitAndPush("bad one")
	wt.Write("README.md", "hello again\n").CommitAndPush("docs only")
	bad := wt.Write("deploy/shop/deployment.yaml", "image: shop:3\n").
		Remove("deploy/shop/service.yaml").
		CommitAndPush("bad two")
	return &fixture{srv: srv, wt: wt, good: good, bad: bad}
}

// head fetches and returns the branch head on the server, and moves the
// work tree there.
func (f *fixture) head(t *testing.T) string {
	t.Helper()
	testenv.Git(t, f.wt.Dir, "fetch", "--quiet", "origin")
	testenv.Git(t, f.wt.Dir, "reset", "--quiet", "--hard", "origin/main")
	return strings.TrimSpace(testenv.Git(t, f.wt.Dir, "rev-parse", "origin/main"))
}

func (f *fixture) tree(t *testing.T, commit, path string) string {
	t.Helper()
	return strings.TrimSpace(testenv.Git(t, f.wt.Dir, "rev-parse", commit+":"+path))
}

func passwordFile(t *testing.T, password string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(p, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) request(t *testing.T, path string) Request {
	return Request{
		URL: f.srv.RepoURL("app"), Branch: "main", Path: path, Commit: f.good,
		Credentials: Credentials{Username: gitUser, PasswordFile: passwordFile(t, gitPassword)},
		Application: "shop-ns/shop", Release: 3, FromRelease: 5,
		AuthorName: "Ops", AuthorEmail: "ops@example.test",
	}
}

func TestRestoreAfterTwoBadCommits(t *testing.T) {
	f := newFixture(t)
	res, err := Restore(context.Background(), f.request(t, "./deploy/shop/"))
	if err != nil {
		t.Fatal(err)
	}
	head := f.head(t)
	if res.UpToDate || res.Commit != head || res.Base != f.bad || res.Retried {
		t.Fatalf("result = %+v, server head %s, bad head %s", res, head, f.bad)
	}
	if got, want := f.tree(t, head, "deploy/shop"), f.tree(t, f.good, "deploy/shop"); got != want {
		t.Errorf("deploy/shop tree = %s, want %s (the good commit's)", got, want)
	}
	if parent := strings.TrimSpace(testenv.Git(t, f.wt.Dir, "rev-parse", head+"^")); parent != f.bad {
		t.Errorf("parent = %s, want the old head %s", parent, f.bad)
	}
	// Nothing outside the path changed.
	changed := strings.Fields(testenv.Git(t, f.wt.Dir, "diff", "--name-only", f.bad, head))
	if diff := cmp.Diff([]string{"deploy/shop/deployment.yaml", "deploy/shop/extra.yaml", "deploy/shop/service.yaml"}, changed); diff != "" {
		t.Errorf("files changed by the restore commit (-want +got):\n%s", diff)
	}
	if got, want := f.tree(t, head, "deploy/other"), f.tree(t, f.bad, "deploy/other"); got != want {
		t.Errorf("deploy/other changed: %s, want %s", got, want)
	}
	msg := testenv.Git(t, f.wt.Dir, "log", "-1", "--format=%B", head)
	for _, want := range []string{
		"berth: revert deploy/shop to " + f.good[:8] + " (release 3)\n",
		"Rolled back from " + f.bad[:8],
		"Berth-Application: shop-ns/shop\n", "Berth-Release: 3\n", "Berth-Rolled-Back-From-Release: 5\n",
		"Berth-Restored-Commit: " + f.good + "\n",
		"bad two", "bad one",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "docs only") {
		t.Errorf("message lists a commit that did not touch the path:\n%s", msg)
	}
	if len(res.Undone) != 2 {
		t.Errorf("undone = %q, want the two bad commits", res.Undone)
	}
	if author := testenv.Git(t, f.wt.Dir, "log", "-1", "--format=%an <%ae>", head); author != "Ops <ops@example.test>\n" {
		t.Errorf("author = %q", author)
	}
}

func TestRestoreRoot(t *testing.T) {
	f := newFixture(t)
	res, err := Restore(context.Background(), f.request(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	head := f.head(t)
	if res.Commit != head {
		t.Fatalf("result %+v, head %s", res, head)
	}
	if got, want := f.tree(t, head, ""), f.tree(t, f.good, ""); got != want {
		t.Errorf("root tree = %s, want %s", got, want)
	}
}

func TestRestoreNothingToDo(t *testing.T) {
	f := newFixture(t)
	if _, err := Restore(context.Background(), f.request(t, "deploy/shop")); err != nil {
		t.Fatal(err)
	}
	before := f.head(t)
	res, err := Restore(context.Background(), f.request(t, "deploy/shop"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.UpToDate || res.Commit != "" || res.Base != before {
		t.Errorf("result = %+v, want up to date at %s", res, before)
	}
	if after := f.head(t); after != before {
		t.Errorf("head moved from %s to %s although nothing was to do", before, after)
	}
	if !strings.Contains(res.Summary(), "nothing pushed") {
		t.Errorf("summary = %q", res.Summary())
	}
	// A fix made by hand in Git is recognised as well.
	f.wt.Write("deploy/other/config.yaml", "a: 1\n").CommitAndPush("manual fix")
	if res, err := Restore(context.Background(), f.request(t, "deploy")); err != nil || !res.UpToDate {
		t.Errorf("restoring deploy after a manual fix = %+v, %v; want up to date", res, err)
	}
}

func TestRestoreWrongPassword(t *testing.T) {
	f := newFixture(t)
	req := f.request(t, "deploy/shop")
	req.Credentials.PasswordFile = passwordFile(t, "wrong-password-value")
	_, err := Restore(context.Background(), req)
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v, want an *AuthError", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, f.srv.RepoURL("app")) || !strings.Contains(msg, `"alice"`) {
		t.Errorf("error does not name the URL and user: %s", msg)
	}
	if strings.Contains(msg, "wrong-password-value") || strings.Contains(msg, gitPassword) {
		t.Errorf("error shows a secret: %s", msg)
	}
	if head := f.head(t); head != f.bad {
		t.Errorf("head = %s, want %s untouched", head, f.bad)
	}
}

func TestRestoreCredentialsFromEnvironment(t *testing.T) {
	f := newFixture(t)
	t.Setenv(EnvUsername, gitUser)
	t.Setenv(EnvPassword, gitPassword)
	req := f.request(t, "deploy/shop")
	req.Credentials = Credentials{}
	// Credentials embedded in the Application's URL are never used.
	req.URL = f.srv.AuthRepoURL("app")
	res, err := Restore(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.URL, gitPassword) || res.URL != f.srv.RepoURL("app") {
		t.Errorf("result URL = %q, want it without credentials", res.URL)
	}
	t.Setenv(EnvPassword, "")
	t.Setenv(EnvUsername, "")
	f.head(t)
	f.wt.Write("deploy/shop/deployment.yaml", "image: shop:4\n").CommitAndPush("bad three")
	if _, err := Restore(context.Background(), req); !errors.As(err, new(*AuthError)) {
		t.Errorf("without credentials: error = %v, want an *AuthError (the URL's own are dropped)", err)
	}
}

func TestRestoreRetriesWhenGitMovedOn(t *testing.T) {
	f := newFixture(t)
	other := f.srv.Clone(t, "app")
	var concurrent string
	testHookBeforePush = func(attempt int) {
		if attempt == 0 {
			concurrent = other.Write("docs/notes.md", "meanwhile\n").
				Write("deploy/shop/deployment.yaml", "image: shop:9\n").CommitAndPush("meanwhile")
		}
	}
	t.Cleanup(func() { testHookBeforePush = nil })
	res, err := Restore(context.Background(), f.request(t, "deploy/shop"))
	if err != nil {
		t.Fatal(err)
	}
	head := f.head(t)
	if !res.Retried || res.Commit != head || res.Base != concurrent {
		t.Fatalf("result = %+v, want a retry on %s pushed as the head %s", res, concurrent, head)
	}
	if parent := strings.TrimSpace(testenv.Git(t, f.wt.Dir, "rev-parse", head+"^")); parent != concurrent {
		t.Errorf("parent = %s, want the concurrent commit %s", parent, concurrent)
	}
	if got, want := f.tree(t, head, "deploy/shop"), f.tree(t, f.good, "deploy/shop"); got != want {
		t.Errorf("deploy/shop tree = %s, want the good commit's %s", got, want)
	}
	if got := testenv.Git(t, f.wt.Dir, "show", head+":docs/notes.md"); got != "meanwhile\n" {
		t.Errorf("the concurrent commit's file outside the path = %q, want it kept", got)
	}
}

func TestRestoreGivesUpAfterOneRetry(t *testing.T) {
	f := newFixture(t)
	other := f.srv.Clone(t, "app")
	n := 0
	testHookBeforePush = func(int) {
		n++
		other.Write("docs/notes.md", strings.Repeat("x", n)).CommitAndPush("racing")
	}
	t.Cleanup(func() { testHookBeforePush = nil })
	_, err := Restore(context.Background(), f.request(t, "deploy/shop"))
	if !errors.Is(err, ErrMovedOn) || n != 2 {
		t.Fatalf("error = %v after %d attempts, want ErrMovedOn after 2", err, n)
	}
	if !strings.Contains(err.Error(), f.srv.RepoURL("app")) {
		t.Errorf("error does not name the URL: %v", err)
	}
}

func TestRestoreTargetMissing(t *testing.T) {
	f := newFixture(t)
	req := f.request(t, "deploy/nowhere")
	if _, err := Restore(context.Background(), req); !errors.Is(err, ErrTargetMissing) {
		t.Errorf("missing path: error = %v, want ErrTargetMissing", err)
	}
	req = f.request(t, "deploy/shop")
	req.Commit = strings.Repeat("ab", 20)
	if _, err := Restore(context.Background(), req); !errors.Is(err, ErrTargetMissing) {
		t.Errorf("unknown commit: error = %v, want ErrTargetMissing", err)
	}
	if head := f.head(t); head != f.bad {
		t.Errorf("head = %s, want %s untouched", head, f.bad)
	}
}
