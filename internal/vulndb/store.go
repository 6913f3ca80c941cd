package vulndb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// formatVersion changes whenever the on-disk layout does; a store of another
// version must be imported again (an import replaces it).
//
// Format 3: one file per ecosystem holding an index of package names and,
// per package, its advisories as JSON, so that a scan decodes only the
// packages it looks up (format 2 decoded a whole ecosystem, 12 ms for Go's
// 4,800 records, most of a small image's scan).
const formatVersion = 3

const metaFile = "meta.json"

// ErrNoDatabase is returned when the store directory holds no database.
var ErrNoDatabase = errors.New("no vulnerability database (run `berth db import PATH`)")

// Metadata describes a store: where its data came from and what it holds.
type Metadata struct {
	Format int `json:"format"`
	// UpdatedAt is when data was last imported; the age check uses it.
	UpdatedAt time.Time `json:"updatedAt"`
	// Newest is the latest "modified" time of any advisory.
	Newest     time.Time                `json:"newest"`
	Advisories int                      `json:"advisories"`
	Sources    []Source                 `json:"sources"`
	Ecosystems map[string]EcosystemInfo `json:"ecosystems"`
}

// Source is one import.
type Source struct {
	Path       string    `json:"path"`
	ImportedAt time.Time `json:"importedAt"`
	Records    int       `json:"records"`
	Skipped    int       `json:"skipped"`
}

// EcosystemInfo counts what a store holds for one ecosystem.
type EcosystemInfo struct {
	File       string `json:"file"`
	Advisories int    `json:"advisories"`
	Packages   int    `json:"packages"`
}

// ecosystemData is what one ecosystem file holds: advisories by package.
type ecosystemData map[string][]Advisory

// DB is an opened store. Ecosystems are loaded on first use, and a
// package's advisories decoded on its first lookup; a DB is safe for
// concurrent use.
type DB struct {
	dir  string
	meta Metadata

	mu   sync.Mutex
	ecos map[string]*ecosystemFile
}

// DefaultDir is $BERTH_DB_DIR, or berth/vulndb under the user cache directory.
func DefaultDir() (string, error) {
	if d := os.Getenv("BERTH_DB_DIR"); d != "" {
		return d, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the user cache directory: %w", err)
	}
	return filepath.Join(c, "berth", "vulndb"), nil
}

// Open reads the store's metadata. It returns ErrNoDatabase when dir holds
// no store.
func Open(dir string) (*DB, error) {
	data, err := os.ReadFile(filepath.Join(dir, metaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening %s: %w", dir, ErrNoDatabase)
	}
	if err != nil {
		return nil, fmt.Errorf("opening vulnerability database: %w", err)
	}
	var m Metadata
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, metaFile), err)
	}
	if m.Format != formatVersion {
		return nil, fmt.Errorf("vulnerability database in %s has format %d, berth reads %d: import the data again", dir, m.Format, formatVersion)
	}
	return &DB{dir: dir, meta: m, ecos: map[string]*ecosystemFile{}}, nil
}

// Dir is the store directory.
func (db *DB) Dir() string { return db.dir }

// Metadata describes the store.
func (db *DB) Metadata() Metadata { return db.meta }

// Lookup returns the advisories stored for a package. ecosystem may carry a
// release suffix ("Debian:12"); the caller filters affected entries by it.
func (db *DB) Lookup(ecosystem, name string) ([]Advisory, error) {
	base := BaseEcosystem(ecosystem)
	db.mu.Lock()
	defer db.mu.Unlock()
	e, err := db.ecosystem(base)
	if err != nil || e == nil {
		return nil, err
	}
	return e.lookup(NormalizeName(base, name))
}

// ecosystem opens base's file on first use; nil when the store has none.
// db.mu is held.
func (db *DB) ecosystem(base string) (*ecosystemFile, error) {
	if e, ok := db.ecos[base]; ok {
		return e, nil
	}
	info, ok := db.meta.Ecosystems[base]
	if !ok {
		db.ecos[base] = nil
		return nil, nil
	}
	e, err := openEcosystem(filepath.Join(db.dir, info.File))
	if err != nil {
		return nil, err
	}
	db.ecos[base] = e
	return e, nil
}

// ErrTooOld is wrapped by CheckAge when the store is older than allowed.
var ErrTooOld = errors.New("vulnerability database is too old")

// CheckAge returns an error wrapping ErrTooOld when the data was imported
// more than maxAge before now. maxAge ≤ 0 disables the check.
func (db *DB) CheckAge(now time.Time, maxAge time.Duration) error {
	if maxAge <= 0 {
		return nil
	}
	age := now.Sub(db.meta.UpdatedAt)
	if age > maxAge {
		return fmt.Errorf("%w: imported %s ago (%s), limit %s; import fresh data with `berth db import` or raise --max-db-age",
			ErrTooOld, age.Round(time.Hour), db.meta.UpdatedAt.UTC().Format(time.RFC3339), maxAge)
	}
	return nil
}

// fileName is the store file for an ecosystem: letters, digits, '.' and '-'
// kept, everything else '_'.
func fileName(base string) string {
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return "eco-" + b.String() + ".db"
}

// loadAll reads every ecosystem of an existing store (for merging).
func (db *DB) loadAll() (map[string]ecosystemData, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	out := map[string]ecosystemData{}
	for base := range db.meta.Ecosystems {
		e, err := db.ecosystem(base)
		if err != nil {
			return nil, err
		}
		if e == nil {
			continue
		}
		d := ecosystemData{}
		for _, name := range e.index.Names {
			advs, err := e.lookup(name)
			if err != nil {
				return nil, err
			}
			d[name] = advs
		}
		out[base] = d
	}
	return out, nil
}

// write stores data and meta into a fresh directory beside dir, then swaps
// it in, so a reader never sees a half-written store.
func write(dir string, data map[string]ecosystemData, meta Metadata) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, ".vulndb-import-")
	if err != nil {
		return fmt.Errorf("creating staging directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	meta.Format = formatVersion
	meta.Ecosystems = map[string]EcosystemInfo{}
	meta.Advisories = 0
	ids := map[string]bool{}
	bases := make([]string, 0, len(data))
	for b := range data {
		bases = append(bases, b)
	}
	sort.Strings(bases)
	for _, base := range bases {
		d := data[base]
		if len(d) == 0 {
			continue
		}
		info := EcosystemInfo{File: fileName(base), Packages: len(d)}
		ecoIDs := map[string]bool{}
		for _, advs := range d {
			for _, a := range advs {
				ecoIDs[a.ID] = true
				ids[a.ID] = true
				if a.Modified.After(meta.Newest) {
					meta.Newest = a.Modified
				}
			}
		}
		info.Advisories = len(ecoIDs)
		if err := writeEcosystem(filepath.Join(tmp, info.File), d); err != nil {
			return err
		}
		meta.Ecosystems[base] = info
	}
	meta.Advisories = len(ids)
	mb, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding metadata: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, metaFile), mb, 0o644); err != nil {
		return fmt.Errorf("writing metadata: %w", err)
	}
	old := dir + ".old"
	_ = os.RemoveAll(old)
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replacing %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.Rename(old, dir)
		return fmt.Errorf("replacing %s: %w", dir, err)
	}
	return os.RemoveAll(old)
}
