package source

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DirHash hashes the files under path inside a snapshot (names, modes and
// contents), to tell whether an Application's directory changed between
// two commits. Unreadable trees, and paths that leave root (as written or
// through a symbolic link), hash to "". A path that is a link to another
// directory of the snapshot hashes that directory.
func DirHash(root, path string) string {
	rel := filepath.FromSlash(strings.Trim(path, "/"))
	if rel != "" && !filepath.IsLocal(rel) {
		return ""
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return ""
	}
	dir, err := filepath.EvalSymlinks(filepath.Join(root, rel))
	if err != nil {
		return ""
	}
	if inside, err := filepath.Rel(realRoot, dir); err != nil || (inside != "." && !filepath.IsLocal(inside)) {
		return ""
	}
	h := sha256.New()
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		_, _ = io.WriteString(h, rel+"\x00"+d.Type().String()+"\x00")
		if d.Type().IsRegular() {
			f, err := os.Open(p) //nolint:gosec // snapshots are written by berth and never change once published
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		} else if d.Type()&fs.ModeSymlink != 0 {
			t, _ := os.Readlink(p)
			_, _ = io.WriteString(h, t)
		}
		return nil
	})
	if err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}
