package source_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/berth-dev/berth/internal/source"
	"github.com/berth-dev/berth/internal/testenv"
)

// TestFetchRefusesAGitBomb pushes commits whose trees name one subtree a
// thousand times, nested: a handful of objects, small enough for every
// limit on the pack, that expand to a million files, or to a billion
// directories holding no file at all.
func TestFetchRefusesAGitBomb(t *testing.T) {
	g := testenv.NewGitServer(t)
	tests := []struct {
		name  string
		leaf  filemode.FileMode // what the innermost tree holds
		depth int
	}{
		{"a million empty files", filemode.Regular, 2},
		{"a billion empty directories", filemode.Dir, 3},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("bomb%d", i)
			g.CreateRepo(t, name)
			wt := g.Clone(t, name)
			wt.Write("apps/ok.yaml", "ok\n")
			wt.CommitAndPush("ok")
			bomb := commitBomb(t, wt.Dir, tt.leaf, tt.depth)
			testenv.Git(t, wt.Dir, "push", "--quiet", "origin", bomb+":refs/heads/main")

			cache := t.TempDir()
			f := source.NewFetcher(source.Options{CacheDir: cache, MaxFiles: 5000, Timeout: time.Minute})
			_, err := f.Fetch(context.Background(), g.RepoURL(name), source.Ref{}, nil)
			if !errors.Is(err, source.ErrUnsafe) || !strings.Contains(err.Error(), "more than 5000 entries") {
				t.Fatalf("err = %v, want ErrUnsafe for more than 5000 entries", err)
			}
			files := 0
			_ = filepath.WalkDir(cache, func(_ string, d os.DirEntry, _ error) error {
				if d != nil && !d.IsDir() {
					files++
				}
				return nil
			})
			if files != 0 {
				t.Errorf("the refused commit left %d files in the cache", files)
			}
		})
	}
}

// encoder is a Git object that encodes itself (a tree, a commit).
type encoder interface {
	Encode(plumbing.EncodedObject) error
}

// commitBomb writes, in the repository at dir, a commit on top of HEAD
// whose tree nests depth levels of trees of 1000 entries, each naming the
// same object: at the bottom an empty blob (leaf Regular) or an empty tree
// (leaf Dir). It returns the commit's SHA.
func commitBomb(t *testing.T, dir string, leaf filemode.FileMode, depth int) string {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := repo.Storer
	save := func(enc encoder, typ plumbing.ObjectType) plumbing.Hash {
		o := st.NewEncodedObject()
		o.SetType(typ)
		if err := enc.Encode(o); err != nil {
			t.Fatal(err)
		}
		h, err := st.SetEncodedObject(o)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	var child plumbing.Hash
	if leaf == filemode.Dir {
		child = save(&object.Tree{}, plumbing.TreeObject)
	} else {
		o := st.NewEncodedObject()
		o.SetType(plumbing.BlobObject)
		if child, err = st.SetEncodedObject(o); err != nil {
			t.Fatal(err)
		}
	}
	mode := leaf
	for range depth {
		tree := &object.Tree{}
		for i := range 1000 {
			tree.Entries = append(tree.Entries, object.TreeEntry{Name: fmt.Sprintf("e%03d", i), Mode: mode, Hash: child})
		}
		child, mode = save(tree, plumbing.TreeObject), filemode.Dir
	}
	root := save(&object.Tree{Entries: []object.TreeEntry{{Name: "apps", Mode: filemode.Dir, Hash: child}}}, plumbing.TreeObject)
	head, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	sig := object.Signature{Name: "berth test", Email: "test@berth.invalid", When: time.Now()}
	c := save(&object.Commit{Author: sig, Committer: sig, Message: "bomb\n", TreeHash: root, ParentHashes: []plumbing.Hash{head.Hash()}}, plumbing.CommitObject)
	return c.String()
}
