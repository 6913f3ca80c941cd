package source

import (
	"context"
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

// maxLinkTarget is the longest symbolic link target a snapshot holds
// (Linux's PATH_MAX).
const maxLinkTarget = 4096

// snapshotLimits bound what one commit may write to disk.
type snapshotLimits struct {
	file, total int64 // bytes of one file, of all files
	// entries is the number of files and symbolic links. Git stores a
	// subtree once however often trees name it, so a pack of a few
	// objects can expand to billions of paths (a "git bomb"): the pack's
	// limits cannot see that, this one does.
	entries int
}

// writeSnapshot writes the tree of c into dir, atomically. It stops at the
// first limit passed, and when ctx ends.
func writeSnapshot(ctx context.Context, c *object.Commit, dir string, lim snapshotLimits) error {
	maxFile, maxTotal := lim.file, lim.total
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
	// The walk counts directories too: a tree naming one empty subtree a
	// thousand times, nested, holds no file at all and still takes
	// forever to walk.
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	entries := 0
	next := func() (*object.File, error) {
		for {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("writing the snapshot of %s: %w", c.Hash, err)
			}
			name, e, err := walker.Next()
			if errors.Is(err, io.EOF) && e.Mode == filemode.Dir && !e.Hash.IsZero() {
				// go-git's walker ends the walk, as if the tree were
				// done, when a subtree cannot be read: the snapshot would
				// miss every file after it, and the sync prune them.
				return nil, fmt.Errorf("reading %s: tree %s is missing from what the server sent", name, e.Hash)
			}
			if err != nil {
				return nil, err
			}
			if entries++; entries > lim.entries {
				return nil, fmt.Errorf("%w: commit holds more than %d entries (files, directories and symbolic links)", ErrUnsafe, lim.entries)
			}
			if e.Mode == filemode.Dir || e.Mode == filemode.Submodule {
				continue
			}
			f, err := tree.TreeEntryFile(&e)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", name, err)
			}
			f.Name = name
			return f, nil
		}
	}
	write := func(f *object.File) error {
		name := path.Clean(f.Name)
		if strings.HasPrefix(name, "../") || name == ".." || path.IsAbs(name) {
			return fmt.Errorf("%w: path %q escapes the repository", ErrUnsafe, f.Name)
		}
		switch f.Mode {
		case filemode.Symlink:
			// A link's target is a path: longer than PATH_MAX cannot be
			// created anyway, and one blob may be named by any number of
			// links, each read whole here.
			if f.Size > maxLinkTarget {
				return fmt.Errorf("%w: symlink %s has a target of %d bytes, limit %d", ErrUnsafe, name, f.Size, maxLinkTarget)
			}
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
	}
	for {
		f, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := write(f); err != nil {
			return err
		}
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
