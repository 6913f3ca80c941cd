package vulndb

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Limits bound what an import reads, so that a hostile archive cannot
// exhaust memory or disk.
type Limits struct {
	// MaxRecordBytes is the largest single OSV file or archive member.
	MaxRecordBytes int64
	// MaxTotalBytes is the most uncompressed data one import reads.
	MaxTotalBytes int64
	// MaxRecords is the most files or archive members one import reads.
	MaxRecords int
}

// DefaultLimits fit the largest OSV archives published today with room
// to spare (all of PyPI is ~0.5 GB uncompressed).
func DefaultLimits() Limits {
	return Limits{MaxRecordBytes: 8 << 20, MaxTotalBytes: 4 << 30, MaxRecords: 2_000_000}
}

// ImportOptions are the knobs of Import.
type ImportOptions struct {
	// Now stamps the import; zero means time.Now().
	Now    time.Time
	Limits Limits
}

// ImportResult tells what an import did.
type ImportResult struct {
	Records   int
	Withdrawn int
	Skipped   int
	// Warnings explain skipped records; only the first 50 are kept.
	Warnings []string
	// Replaced, when not empty, says why an existing store could not be
	// merged and was replaced.
	Replaced string
	Meta     Metadata
}

const maxWarnings = 50

// ErrLimit is wrapped when the input as a whole exceeds Limits; the import
// stops.
var ErrLimit = errors.New("import limit exceeded")

// errTooLarge marks one record over MaxRecordBytes; it is skipped.
var errTooLarge = errors.New("record too large")

type importer struct {
	ctx     context.Context
	lim     Limits
	total   int64
	count   int
	entries []*osvEntry
	res     ImportResult
}

func (im *importer) warn(format string, args ...any) {
	im.res.Skipped++
	if len(im.res.Warnings) < maxWarnings {
		im.res.Warnings = append(im.res.Warnings, fmt.Sprintf(format, args...))
	}
}

// Import reads OSV records from src (a .json file, a directory tree of .json
// files or an OSV all.zip archive) and merges them into the store in dir:
// a record replaces an earlier one with the same ID.
func Import(ctx context.Context, dir, src string, opts ImportOptions) (*ImportResult, error) {
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits()
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	im := &importer{ctx: ctx, lim: opts.Limits}
	if err := im.read(src); err != nil {
		return nil, err
	}
	if len(im.entries) == 0 && im.res.Withdrawn == 0 {
		return nil, fmt.Errorf("importing %s: no valid OSV records found (%d skipped)", src, im.res.Skipped)
	}

	data := map[string]ecosystemData{}
	meta := Metadata{}
	if old, err := Open(dir); err == nil {
		if data, err = old.loadAll(); err != nil {
			// A damaged store is replaced, not merged.
			im.res.Replaced = fmt.Sprintf("the existing store could not be read, so this import replaces it instead of merging: %v", err)
			data = map[string]ecosystemData{}
		} else {
			meta.Sources = old.meta.Sources
		}
	} else if !errors.Is(err, ErrNoDatabase) {
		// An unreadable or outdated store is replaced, not merged.
		data = map[string]ecosystemData{}
	}
	replaced := map[string]bool{}
	for _, e := range im.entries {
		replaced[e.ID] = true
	}
	for base, d := range data {
		for name, advs := range d {
			kept := advs[:0:0]
			for _, a := range advs {
				if !replaced[a.ID] {
					kept = append(kept, a)
				}
			}
			if len(kept) == 0 {
				delete(d, name)
			} else {
				d[name] = kept
			}
		}
		data[base] = d
	}
	for _, e := range im.entries {
		for base, byName := range advisoriesFrom(e) {
			if data[base] == nil {
				data[base] = ecosystemData{}
			}
			for name, adv := range byName {
				data[base][name] = append(data[base][name], *adv)
			}
		}
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		abs = src
	}
	meta.UpdatedAt = opts.Now.UTC()
	meta.Sources = append(meta.Sources, Source{Path: abs, ImportedAt: meta.UpdatedAt, Records: im.res.Records, Skipped: im.res.Skipped})
	if len(meta.Sources) > 20 {
		meta.Sources = meta.Sources[len(meta.Sources)-20:]
	}
	if err := write(dir, data, meta); err != nil {
		return nil, err
	}
	db, err := Open(dir)
	if err != nil {
		return nil, err
	}
	im.res.Meta = db.meta
	return &im.res, nil
}

func (im *importer) read(src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("importing: %w", err)
	}
	if fi.IsDir() {
		return im.readDir(src)
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("importing: %w", err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	n, _ := io.ReadFull(f, magic)
	if bytes.Equal(magic[:n], []byte("PK\x03\x04")) {
		return im.readZip(f, fi.Size(), src)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	data, err := im.readBounded(f, src)
	if err != nil {
		return err
	}
	// A single file given by name must parse: report its error rather than a
	// skip count.
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var raws []json.RawMessage
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			return fmt.Errorf("reading %s: %w", src, err)
		}
		for i, r := range raws {
			im.add(r, fmt.Sprintf("%s[%d]", src, i))
		}
		return nil
	}
	e, err := parseEntry(data)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	im.keep(e)
	return nil
}

// readBounded reads one record, refusing more than MaxRecordBytes and
// counting towards MaxTotalBytes and MaxRecords.
func (im *importer) readBounded(r io.Reader, name string) ([]byte, error) {
	if err := im.ctx.Err(); err != nil {
		return nil, err
	}
	im.count++
	if im.count > im.lim.MaxRecords {
		return nil, fmt.Errorf("%w: more than %d records", ErrLimit, im.lim.MaxRecords)
	}
	data, err := io.ReadAll(io.LimitReader(r, im.lim.MaxRecordBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(data)) > im.lim.MaxRecordBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", errTooLarge, name, im.lim.MaxRecordBytes)
	}
	im.total += int64(len(data))
	if im.total > im.lim.MaxTotalBytes {
		return nil, fmt.Errorf("%w: input expands beyond %d bytes", ErrLimit, im.lim.MaxTotalBytes)
	}
	return data, nil
}

func (im *importer) add(data []byte, name string) {
	e, err := parseEntry(data)
	if err != nil {
		im.warn("skipping %q: %v", name, err)
		return
	}
	im.keep(e)
}

func (im *importer) keep(e *osvEntry) {
	if e.Withdrawn != nil && !e.Withdrawn.IsZero() {
		im.res.Withdrawn++
		return
	}
	im.res.Records++
	im.entries = append(im.entries, e)
}

// readDir reads the .json files under root. Files are opened through an
// os.Root, so a symlink swapped in during the walk cannot lead outside it.
func (im *importer) readDir(root string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("importing: %w", err)
	}
	defer r.Close()
	return fs.WalkDir(r.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		name := filepath.Join(root, p)
		if err != nil {
			im.warn("skipping %q: %v", name, err)
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		if !d.Type().IsRegular() {
			im.warn("skipping %q: not a regular file", name)
			return nil
		}
		f, err := r.Open(p)
		if err != nil {
			im.warn("skipping %q: %v", name, err)
			return nil
		}
		data, err := im.readBounded(f, name)
		_ = f.Close()
		if errors.Is(err, errTooLarge) {
			im.warn("skipping %q: %v", name, err)
			return nil
		}
		if err != nil {
			return err
		}
		im.add(data, name)
		return nil
	})
}

// readZip reads the .json members of an OSV all.zip. Members are parsed in
// memory and never written to disk, so their names cannot place files; names
// that try to escape (absolute, "..") are still refused and reported.
func (im *importer) readZip(f *os.File, size int64, src string) error {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return fmt.Errorf("reading archive %s: %w", src, err)
	}
	for _, zf := range zr.File {
		name := zf.Name
		if zf.FileInfo().IsDir() {
			continue
		}
		if !safeMemberName(name) {
			im.warn("skipping archive member %q: unsafe path", name)
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		if zf.UncompressedSize64 > uint64(max(im.lim.MaxRecordBytes, 0)) { //nolint:gosec // non-negative by max
			im.warn("skipping archive member %q: %d bytes is over the %d byte limit", name, zf.UncompressedSize64, im.lim.MaxRecordBytes)
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			im.warn("skipping archive member %q: %v", name, err)
			continue
		}
		data, err := im.readBounded(rc, name)
		_ = rc.Close()
		if err != nil {
			if errors.Is(err, ErrLimit) || im.ctx.Err() != nil {
				return fmt.Errorf("reading archive %s: %w", src, err)
			}
			// Too large, or a corrupt member (bad CRC, bad deflate stream).
			im.warn("skipping archive member %q: %v", name, err)
			continue
		}
		im.add(data, name)
	}
	return nil
}

func safeMemberName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.Contains(name, ":") {
		return false
	}
	clean := path.Clean(name)
	return clean != ".." && !strings.HasPrefix(clean, "../")
}
