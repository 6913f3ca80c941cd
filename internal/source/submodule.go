package source

import (
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/config"
)

// Submodule describes a Git submodule of a snapshot, as its .gitmodules
// file declares it. Snapshots hold no submodule content: berth fetches
// one repository per Application.
type Submodule struct {
	Path string
	// URL is the submodule's repository, without credentials.
	URL string
}

// maxGitmodules bounds the .gitmodules file read: it names submodules,
// one short section each.
const maxGitmodules = 1 << 20

// SubmoduleAt returns the submodule that holds p (a path from the
// repository root), when the snapshot's .gitmodules declares one at p or
// above it. A missing or unreadable .gitmodules means none.
func (s *Snapshot) SubmoduleAt(p string) (Submodule, bool) {
	p = path.Clean("/" + filepath.ToSlash(p))[1:]
	if p == "" {
		return Submodule{}, false
	}
	root, err := os.OpenRoot(s.Dir)
	if err != nil {
		return Submodule{}, false
	}
	defer root.Close()
	fi, err := root.Lstat(".gitmodules")
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxGitmodules {
		return Submodule{}, false
	}
	data, err := root.ReadFile(".gitmodules")
	if err != nil {
		return Submodule{}, false
	}
	mods := config.NewModules()
	if err := mods.Unmarshal(data); err != nil {
		return Submodule{}, false
	}
	for _, m := range mods.Submodules {
		mp := path.Clean("/" + m.Path)[1:]
		if mp != "" && (p == mp || strings.HasPrefix(p, mp+"/")) {
			return Submodule{Path: mp, URL: Redact(m.URL)}, true
		}
	}
	return Submodule{}, false
}
