package gitrevert

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/berth-dev/berth/internal/release"
)

// pathTree returns the hash of the tree at p ("" for the root) in c, or the
// zero hash when p does not exist there.
func pathTree(c *object.Commit, p string) (plumbing.Hash, error) {
	root, err := c.Tree()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("reading the tree of %s: %w", release.ShortCommit(c.Hash.String()), err)
	}
	if p == "" {
		return root.Hash, nil
	}
	e, err := root.FindEntry(p)
	switch {
	case errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound):
		return plumbing.ZeroHash, nil
	case err != nil:
		return plumbing.ZeroHash, fmt.Errorf("looking up %s in %s: %w", p, release.ShortCommit(c.Hash.String()), err)
	case e.Mode != filemode.Dir:
		return plumbing.ZeroHash, fmt.Errorf("%s is not a directory in %s", p, release.ShortCommit(c.Hash.String()))
	}
	return e.Hash, nil
}

// replaceTree writes the trees needed to put the tree sub at p ("" for the
// root) into root, leaving every other entry as it is, and returns the new
// root tree's hash. A missing directory on the way is created.
func replaceTree(s storer.EncodedObjectStorer, root plumbing.Hash, p string, sub plumbing.Hash) (plumbing.Hash, error) {
	if p == "" {
		return sub, nil
	}
	name, rest, _ := strings.Cut(p, "/")
	var entries []object.TreeEntry
	if !root.IsZero() {
		t, err := object.GetTree(s, root)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("reading tree %s: %w", root, err)
		}
		entries = append(entries, t.Entries...)
	}
	child := plumbing.ZeroHash
	i := slices.IndexFunc(entries, func(e object.TreeEntry) bool { return e.Name == name })
	found := i >= 0
	if found && entries[i].Mode == filemode.Dir {
		child = entries[i].Hash // a file of that name is replaced
	}
	h, err := replaceTree(s, child, rest, sub)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	e := object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
	if found {
		entries[i] = e
	} else {
		entries = append(entries, e)
	}
	sortEntries(entries)
	t := &object.Tree{Entries: entries}
	obj := s.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encoding tree: %w", err)
	}
	return s.SetEncodedObject(obj)
}

// sortEntries orders entries the way Git does: by name, a directory's name
// compared as if it ended in "/".
func sortEntries(entries []object.TreeEntry) {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
}
