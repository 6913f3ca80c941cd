package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/berth-dev/berth/internal/testenv"
)

// A commit whose subtree the server did not send is an error: go-git's
// walker ends the walk there, as if the tree were done, and the snapshot
// would have missed every file after it.
func TestWriteSnapshotRefusesACommitMissingATree(t *testing.T) {
	dir := t.TempDir()
	testenv.Git(t, dir, "init", "--quiet")
	testenv.Git(t, dir, "config", "user.email", "test@berth.invalid")
	testenv.Git(t, dir, "config", "user.name", "berth test")
	for name, content := range map[string]string{"a.yaml": "a: 1\n", "b/x.yaml": "x: 1\n", "c.yaml": "c: 1\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, dir, "add", "-A")
	testenv.Git(t, dir, "commit", "--quiet", "-m", "three")
	head := strings.TrimSpace(testenv.Git(t, dir, "rev-parse", "HEAD"))
	sub := strings.TrimSpace(testenv.Git(t, dir, "rev-parse", "HEAD:b"))

	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := repo.CommitObject(plumbing.NewHash(head))
	if err != nil {
		t.Fatal(err)
	}
	lim := snapshotLimits{file: 1 << 20, total: 1 << 20, entries: 100}
	whole := filepath.Join(t.TempDir(), "whole")
	if err := writeSnapshot(context.Background(), c, whole, lim); err != nil {
		t.Fatalf("complete commit: %v", err)
	}
	for _, f := range []string{"a.yaml", "b/x.yaml", "c.yaml"} {
		if _, err := os.Stat(filepath.Join(whole, f)); err != nil {
			t.Errorf("complete commit: %v", err)
		}
	}

	// The subtree's object goes missing (a server that did not send it).
	if err := os.Remove(filepath.Join(dir, ".git", "objects", sub[:2], sub[2:])); err != nil {
		t.Fatal(err)
	}
	if repo, err = git.PlainOpen(dir); err != nil {
		t.Fatal(err)
	}
	if c, err = repo.CommitObject(plumbing.NewHash(head)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "snap")
	err = writeSnapshot(context.Background(), c, out, lim)
	if err == nil || !strings.Contains(err.Error(), sub) {
		t.Fatalf("err = %v, want one naming the missing tree %s", err, sub)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a snapshot was published: %v", err)
	}
}
