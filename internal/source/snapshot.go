package source

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrUnsafe marks a commit refused for its content: a symlink leaving the
// repository, an oversized file or tree, a path that escapes.
var ErrUnsafe = errors.New("unsafe repository content")

// writeSnapshot writes the tree of c into dir, atomically.
func writeSnapshot(c *object.Commit, dir string, maxFile, maxTotal int64) error {
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("reading tree of %s: %w", c.Hash, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("creating snapshot cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-"+c.Hash.String()[:12]+"-")
	if err != nil {
		return fmt.Errorf("creating snapshot: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()
	// Every write goes through root, which refuses paths that leave it.
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return fmt.Errorf("creating snapshot: %w", err)
	}
	defer root.Close()
	type link struct{ name, target string }
	var links []link
	var total int64
	err = tree.Files().ForEach(func(f *object.File) error {
		name := path.Clean(f.Name)
		if strings.HasPrefix(name, "../") || name == ".." || path.IsAbs(name) {
			return fmt.Errorf("%w: path %q escapes the repository", ErrUnsafe, f.Name)
		}
		switch f.Mode {
		case filemode.Symlink:
			target, err := f.Contents()
			if err != nil {
				return fmt.Errorf("reading symlink %s: %w", name, err)
			}
			resolved := path.Clean(path.Join(path.Dir(name), target))
			if path.IsAbs(target) || resolved == ".." || strings.HasPrefix(resolved, "../") {
				return fmt.Errorf("%w: symlink %s points outside the repository (%s)", ErrUnsafe, name, target)
			}
			// Created once every file is written, so no file is written
			// through a link.
			links = append(links, link{name, target})
			return nil
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
		default:
			return nil // submodules and the like are not followed
		}
		if f.Size > maxFile {
			return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrUnsafe, name, f.Size, maxFile)
		}
		total += f.Size
		if total > maxTotal {
			return fmt.Errorf("%w: commit content exceeds %d bytes", ErrUnsafe, maxTotal)
		}
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		r, err := f.Reader()
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		defer r.Close()
		out, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		if _, err := io.Copy(out, io.LimitReader(r, maxFile+1)); err != nil {
			_ = out.Close()
			return fmt.Errorf("writing %s: %w", name, err)
		}
		return out.Close()
	})
	if err != nil {
		return err
	}
	for _, l := range links {
		if err := root.MkdirAll(path.Dir(l.name), 0o755); err != nil {
			return fmt.Errorf("%w: symlink %s: %v", ErrUnsafe, l.name, err)
		}
		if err := root.Symlink(l.target, l.name); err != nil {
			return fmt.Errorf("%w: symlink %s: %v", ErrUnsafe, l.name, err)
		}
	}
	// Each target was checked as text; resolved through the other links
	// (a -> .., b -> a/.., ...) it may still leave the repository. A link
	// that resolves nowhere (dangling) is harmless; one that leaves, or
	// loops, refuses the commit.
	for _, l := range links {
		if _, err := root.Stat(l.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: symlink %s leaves the repository through other links (%s): %v", ErrUnsafe, l.name, l.target, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return nil // another process completed the same snapshot
		}
		return fmt.Errorf("publishing snapshot: %w", err)
	}
	ok = true
	return nil
}
