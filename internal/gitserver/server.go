package gitserver

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Options configure the handler.
type Options struct {
	// Root holds the bare repositories; NAME.git is served at /NAME.git.
	Root string
	// User and Password, when set, are required (basic auth) for every request.
	User, Password string
}

// NewHandler returns the smart-HTTP handler. It fails when the git binary
// is missing.
func NewHandler(o Options) (http.Handler, error) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("the Git server needs the git binary: %w", err)
	}
	backend := &cgi.Handler{
		Path: gitBin,
		Args: []string{"http-backend"},
		Dir:  o.Root,
		Env:  []string{"GIT_PROJECT_ROOT=" + o.Root, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + o.Root},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.User != "" {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(o.User)) != 1 ||
				subtle.ConstantTimeCompare([]byte(p), []byte(o.Password)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="berth-git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}), nil
}

// CreateRepo creates an empty bare repository NAME.git under root (default
// branch main) that accepts pushes over HTTP, and returns its directory.
func CreateRepo(ctx context.Context, root, name string) (string, error) {
	dir := filepath.Join(root, name+".git")
	if err := Run(ctx, "", "init", "--quiet", "--bare", "--initial-branch=main", dir); err != nil {
		return "", err
	}
	if err := Run(ctx, dir, "config", "http.receivepack", "true"); err != nil {
		return "", err
	}
	return dir, nil
}

// Run runs git with args in dir, isolated from the user's git configuration.
func Run(ctx context.Context, dir string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("git %v: %w: %s", args, err, out)
	}
	return nil
}
