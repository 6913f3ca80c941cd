package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/gitserver"
)

// GitServer is a real Git smart-HTTP server: `git http-backend` hosted with
// net/http/cgi, serving the bare repositories under Root.
type GitServer struct {
	// URL is the base URL; a repository NAME is at URL/NAME.git.
	URL string
	// Root holds the bare repositories.
	Root string
	// User and Password are the basic-auth credentials, empty when open.
	User, Password string

	mu   sync.Mutex
	srv  *httptest.Server
	addr string
	h    http.Handler
}

// GitOption configures NewGitServer.
type GitOption func(*GitServer)

// WithBasicAuth requires HTTP basic auth with user and password for every
// request, reads included.
func WithBasicAuth(user, password string) GitOption {
	return func(g *GitServer) { g.User, g.Password = user, password }
}

// NewGitServer starts a Git server that lives until t ends. It fails t when
// the git binary is missing.
func NewGitServer(t testing.TB, opts ...GitOption) *GitServer {
	t.Helper()
	g := &GitServer{Root: t.TempDir()}
	for _, o := range opts {
		o(g)
	}
	h, err := gitserver.NewHandler(gitserver.Options{Root: g.Root, User: g.User, Password: g.Password})
	if err != nil {
		t.Fatal(err)
	}
	g.h = h
	g.srv = httptest.NewServer(g.h)
	g.URL = g.srv.URL
	g.addr = g.srv.Listener.Addr().String()
	t.Cleanup(g.Stop)
	return g
}

// RepoURL returns the clone URL of repository name, without credentials.
func (g *GitServer) RepoURL(name string) string { return g.URL + "/" + name + ".git" }

// AuthRepoURL returns the clone URL of name with the credentials embedded.
func (g *GitServer) AuthRepoURL(name string) string {
	if g.User == "" {
		return g.RepoURL(name)
	}
	return strings.Replace(g.RepoURL(name), "http://", "http://"+g.User+":"+g.Password+"@", 1)
}

// CreateRepo creates an empty bare repository name (default branch main)
// that accepts pushes, and returns its clone URL.
func (g *GitServer) CreateRepo(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(g.Root, name+".git")
	Git(t, "", "init", "--bare", "--initial-branch=main", dir)
	Git(t, dir, "config", "http.receivepack", "true")
	return g.RepoURL(name)
}

// Stop closes the server; Start brings it back on the same address.
func (g *GitServer) Stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.srv != nil {
		g.srv.Close()
		g.srv = nil
	}
}

// Start restarts a stopped server on its previous address.
func (g *GitServer) Start(t testing.TB) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.srv != nil {
		return
	}
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old socket may linger briefly
		var lc net.ListenConfig
		if l, err = lc.Listen(context.Background(), "tcp", g.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restarting the Git server on %s: %v", g.addr, err)
	}
	g.srv = httptest.NewUnstartedServer(g.h)
	_ = g.srv.Listener.Close()
	g.srv.Listener = l
	g.srv.Start()
}

// WorkTree is a clone of a repository of the server, for making commits.
type WorkTree struct {
	Dir string
	t   testing.TB
}

// Clone clones repository name (with credentials) into a temporary directory.
func (g *GitServer) Clone(t testing.TB, name string) *WorkTree {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	Git(t, "", "clone", "--quiet", g.AuthRepoURL(name), dir)
	Git(t, dir, "config", "user.email", "test@berth.invalid")
	Git(t, dir, "config", "user.name", "berth test")
	Git(t, dir, "checkout", "--quiet", "-B", "main")
	return &WorkTree{Dir: dir, t: t}
}

// Write creates or replaces a file (path relative to the work tree).
func (w *WorkTree) Write(path, content string) *WorkTree {
	w.t.Helper()
	p := filepath.Join(w.Dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
	return w
}

// Remove deletes a file or directory from the work tree.
func (w *WorkTree) Remove(path string) *WorkTree {
	w.t.Helper()
	if err := os.RemoveAll(filepath.Join(w.Dir, filepath.FromSlash(path))); err != nil {
		w.t.Fatal(err)
	}
	return w
}

// CommitAndPush commits everything and pushes to main; it returns the commit SHA.
func (w *WorkTree) CommitAndPush(msg string) string {
	w.t.Helper()
	Git(w.t, w.Dir, "add", "-A")
	Git(w.t, w.Dir, "commit", "--quiet", "--allow-empty", "-m", msg)
	Git(w.t, w.Dir, "push", "--quiet", "origin", "HEAD:main")
	return strings.TrimSpace(Git(w.t, w.Dir, "rev-parse", "HEAD"))
}

// Git runs git with args in dir and returns its standard output, failing t
// with git's output on error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// GitErr runs git like Git but returns the error (with git's output)
// instead of failing, for tests that expect git to fail.
func GitErr(dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
