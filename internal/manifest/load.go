package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoadOptions bounds what LoadDir accepts.
type LoadOptions struct {
	// MaxFileBytes rejects larger files; 0 means DefaultMaxFileBytes.
	MaxFileBytes int64
	// MaxTotalBytes rejects trees whose manifests add up to more; 0 means
	// DefaultMaxTotalBytes.
	MaxTotalBytes int64
}

// Defaults for LoadOptions.
const (
	DefaultMaxFileBytes  = 8 << 20
	DefaultMaxTotalBytes = 256 << 20
)

// ErrTooLarge is returned for a file or tree above the configured limits.
var ErrTooLarge = errors.New("too large")

// IsManifestFile reports whether name looks like a manifest (.yaml, .yml, .json).
func IsManifestFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// LoadDir reads every manifest file under root, recursively and in lexical
// order. Hidden files and directories (".git", ".berth") are skipped.
// Symlinks are refused unless they resolve inside root; files above the size
// limits are refused. Sources are relative to root.
func LoadDir(root string, opts LoadOptions) ([]Object, error) {
	if opts.MaxFileBytes <= 0 {
		opts.MaxFileBytes = DefaultMaxFileBytes
	}
	if opts.MaxTotalBytes <= 0 {
		opts.MaxTotalBytes = DefaultMaxTotalBytes
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", root, err)
	}
	var files []string
	err = filepath.WalkDir(realRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if p != realRoot && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if err := checkInside(realRoot, p); err != nil {
				return err
			}
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				return &Error{Source: Source{File: rel(realRoot, p)}, Err: errors.New("symlinked directories are not followed")}
			}
		}
		if !d.IsDir() && IsManifestFile(name) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Object
	var total int64
	for _, f := range files {
		r := rel(realRoot, f)
		fi, err := os.Stat(f)
		if err != nil {
			return nil, &Error{Source: Source{File: r}, Err: err}
		}
		if !fi.Mode().IsRegular() {
			return nil, &Error{Source: Source{File: r}, Err: errors.New("not a regular file")}
		}
		if fi.Size() > opts.MaxFileBytes {
			return nil, &Error{Source: Source{File: r}, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, fi.Size(), opts.MaxFileBytes)}
		}
		total += fi.Size()
		if total > opts.MaxTotalBytes {
			return nil, &Error{Source: Source{File: r}, Err: fmt.Errorf("%w: manifests exceed %d bytes in total", ErrTooLarge, opts.MaxTotalBytes)}
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, &Error{Source: Source{File: r}, Err: err}
		}
		objs, err := Parse(r, b)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// checkInside fails when the symlink p resolves outside root.
func checkInside(root, p string) error {
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return &Error{Source: Source{File: rel(root, p)}, Err: fmt.Errorf("broken or looping symlink: %w", err)}
	}
	if target != root && !strings.HasPrefix(target, root+string(filepath.Separator)) {
		return &Error{Source: Source{File: rel(root, p)}, Err: errors.New("symlink points outside the repository")}
	}
	return nil
}

func rel(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}
