package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrBadKey is returned for a key outside the allowed alphabet.
var ErrBadKey = errors.New("invalid cache key")

// Cache is a directory of JSON entries. The zero value is not usable; use
// New. A Cache is safe for concurrent use.
type Cache struct {
	dir string
}

// New returns a cache rooted at dir, creating the directory if needed.
func New(dir string) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("creating cache: empty directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cache directory %s: %w", dir, err)
	}
	return &Cache{dir: dir}, nil
}

// Dir returns the cache directory.
func (c *Cache) Dir() string { return c.dir }

// Key builds a key from parts such as "sha256:abc..." and "catalog-v1",
// mapping ':' to '-' and joining with '_'. It returns ErrBadKey if a part
// holds anything but ASCII letters, digits, '.', '-' and ':'.
func Key(parts ...string) (string, error) {
	for _, p := range parts {
		if !validPart(p) {
			return "", fmt.Errorf("%w: %q", ErrBadKey, p)
		}
	}
	return strings.ReplaceAll(strings.Join(parts, "_"), ":", "-"), nil
}

func validPart(p string) bool {
	if p == "" || strings.HasPrefix(p, ".") {
		return false
	}
	for _, r := range p {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == ':':
		default:
			return false
		}
	}
	return true
}

func (c *Cache) path(key string) (string, error) {
	for _, part := range strings.Split(key, "_") {
		if !validPart(part) || strings.Contains(part, ":") {
			return "", fmt.Errorf("%w: %q", ErrBadKey, key)
		}
	}
	return filepath.Join(c.dir, key+".json"), nil
}

// Get decodes the entry for key into v and reports whether it was there. An
// unreadable or corrupt entry counts as missing (and is overwritten by the
// next Put).
func (c *Cache) Get(key string, v any) (bool, error) {
	p, err := c.path(key)
	if err != nil {
		return false, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading cache entry %s: %w", key, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, nil //nolint:nilerr // a corrupt entry is a miss
	}
	return true, nil
}

// Put stores v as the entry for key, atomically: a temporary file in the
// cache directory renamed into place.
func (c *Cache) Put(key string, v any) error {
	p, err := c.path(key)
	if err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding cache entry %s: %w", key, err)
	}
	f, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing cache entry %s: %w", key, err)
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("writing cache entry %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing cache entry %s: %w", key, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing cache entry %s: %w", key, err)
	}
	return nil
}
