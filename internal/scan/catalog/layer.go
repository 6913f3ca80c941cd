package catalog

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-dev/berth/internal/oci"
)

// ErrLayerTooLarge is returned when a layer decompresses to more than
// Options.MaxLayerBytes: a decompression bomb, or a limit set too low.
var ErrLayerTooLarge = errors.New("layer decompresses past the size limit")

// layerRecord is what one layer contributes, independent of every other
// layer, so it can be cached by the layer's diff ID alone.
type layerRecord struct {
	DiffID string `json:"diffId"`
	// Opaque are directories whose lower-layer contents this layer hides.
	Opaque []string `json:"opaque,omitempty"`
	// Whiteouts are paths this layer deletes.
	Whiteouts []string `json:"whiteouts,omitempty"`
	// Entries are every path this layer writes, directories with a
	// trailing "/", so that overwrites hide what lower layers wrote.
	Entries []string `json:"entries,omitempty"`
	// Links are the symlinks this layer writes, path → target.
	Links map[string]string `json:"links,omitempty"`
	// Files are the files a cataloger found something in.
	Files    []fileRecord `json:"files,omitempty"`
	Warnings []string     `json:"warnings,omitempty"`
}

// fileRecord is what the catalogers found in one file.
type fileRecord struct {
	Path     string    `json:"path"`
	OS       *OS       `json:"os,omitempty"`
	Packages []Package `json:"packages,omitempty"`
	Secrets  []Secret  `json:"secrets,omitempty"`
}

// at returns a copy of fr for the same content at path p (a hard link).
func (fr fileRecord) at(p string) fileRecord {
	out := fileRecord{Path: p, OS: fr.OS}
	for _, pkg := range fr.Packages {
		pkg.Path = "/" + p
		out.Packages = append(out.Packages, pkg)
	}
	for _, s := range fr.Secrets {
		s.Path = "/" + p
		out.Secrets = append(out.Secrets, s)
	}
	return out
}

// countingReader fails with ErrLayerTooLarge once more than max bytes went
// through it, and with the context's error once it is done (so a huge entry
// that is being skipped does not outlive a cancelled scan).
type countingReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
	max int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n > c.max {
		return 0, ErrLayerTooLarge
	}
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if rem := c.max - c.n + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, ErrLayerTooLarge
	}
	return n, err
}

// discarder skips bytes without copying them (oci.OpenLayer's reader).
type discarder interface {
	Discard(n int64) (int64, error)
}

// Seek lets archive/tar skip the content of files nobody reads without
// copying it: only forward moves from the current position are supported,
// and only when the source can discard. The skipped bytes count against
// the limit like read ones.
func (c *countingReader) Seek(offset int64, whence int) (int64, error) {
	d, ok := c.r.(discarder)
	if whence != io.SeekCurrent || offset < 0 || !ok {
		return 0, errors.New("seek: only forward from the current position")
	}
	if offset == 0 {
		return c.n, nil
	}
	if c.n > c.max {
		return 0, ErrLayerTooLarge
	}
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	want := min(offset, c.max-c.n+1)
	n, err := d.Discard(want)
	c.n += n
	switch {
	case c.n > c.max:
		return c.n, ErrLayerTooLarge
	case errors.Is(err, io.EOF):
		// archive/tar seeks over a file's content: the layer ending
		// inside it is a truncated layer, not a clean end.
		return c.n, io.ErrUnexpectedEOF
	case err != nil:
		return c.n, err
	}
	return c.n, nil
}

// shortID is a digest shortened for messages.
func shortID(diffID string) string {
	s := strings.TrimPrefix(diffID, "sha256:")
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

// readLayer streams one layer's tar once and records what it holds.
func readLayer(ctx context.Context, l v1.Layer, diffID string, opts Options) (rec *layerRecord, err error) {
	rc, err := oci.OpenLayer(l, opts.StoredCompressed)
	if err != nil {
		return nil, fmt.Errorf("opening layer %s: %w", diffID, err)
	}
	defer func() {
		if cerr := rc.Close(); cerr != nil && err == nil && !errors.Is(cerr, ErrLayerTooLarge) {
			err = fmt.Errorf("closing layer %s: %w", diffID, cerr)
		}
	}()
	cr := &countingReader{ctx: ctx, r: rc, max: opts.layerLimit(diffID)}
	tr := tar.NewReader(cr)
	rec = &layerRecord{DiffID: diffID, Links: map[string]string{}}
	w := &walker{ctx: ctx, opts: opts, rec: rec, files: map[string]int{}, latest: map[string]int{}, contentOf: map[int]int{}}
	defer func() {
		if w.secrets != nil {
			w.secrets.wait() // on an error, stop the workers all the same
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if cr.n > cr.max || errors.Is(err, ErrLayerTooLarge) {
				return nil, tooLarge(diffID, cr.max, opts)
			}
			return nil, fmt.Errorf("reading layer %s: %w", diffID, err)
		}
		if err := w.entry(hdr, tr); err != nil {
			if cr.n > cr.max || errors.Is(err, ErrLayerTooLarge) {
				return nil, tooLarge(diffID, cr.max, opts)
			}
			return nil, fmt.Errorf("reading layer %s: %s: %w", diffID, hdr.Name, err)
		}
	}
	w.attachSecrets()
	if len(rec.Links) == 0 {
		rec.Links = nil
	}
	return rec, nil
}

func tooLarge(diffID string, limit int64, opts Options) error {
	if size, ok := opts.CompressedSizes[diffID]; ok && limit < opts.MaxLayerBytes {
		return fmt.Errorf("reading layer %s: %w: more than %d bytes from %d compressed (ratio limit %d)", diffID, ErrLayerTooLarge, limit, size, opts.MaxLayerRatio)
	}
	return fmt.Errorf("reading layer %s: %w: more than %d bytes", diffID, ErrLayerTooLarge, limit)
}

// cleanPath turns a tar entry name into a clean path relative to the image
// root ("etc/os-release"). It refuses absolute names and names with ".."
// elements, which could point outside the root; "" with no reason means
// the root itself.
func cleanPath(name string) (string, string) {
	if strings.HasPrefix(name, "/") {
		return "", "absolute path"
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", "path with .. element"
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", "path with NUL byte"
	}
	p := path.Clean(name)
	if p == "." {
		return "", ""
	}
	return p, ""
}

// walker holds the state of one layer walk.
type walker struct {
	ctx   context.Context
	opts  Options
	rec   *layerRecord
	files map[string]int // path → index in rec.Files
	// latest maps each regular file or hard link to its last version in
	// this layer (a sequence number), and contentOf a version to the
	// version whose content it has (a hard link's target's), for the
	// secret scan's results.
	latest    map[string]int
	contentOf map[int]int
	seq       int
	secrets   *secretScan // nil until the first file to search
	// buf holds the content of the file being cataloged, reused from file
	// to file: catalogers copy what they keep.
	buf []byte
}

// version starts a new version of path p in this layer and returns its
// sequence number; until told otherwise it has its own content.
func (w *walker) version(p string) int {
	w.seq++
	w.latest[p] = w.seq
	w.contentOf[w.seq] = w.seq
	return w.seq
}

// content returns a buffer of n bytes for a file's content, valid until
// the next call.
func (w *walker) content(n int64) []byte {
	if int64(cap(w.buf)) < n {
		w.buf = make([]byte, n)
	}
	return w.buf[:n]
}

func (w *walker) warnf(format string, args ...any) {
	w.rec.Warnings = append(w.rec.Warnings, fmt.Sprintf(format, args...)+" (layer "+shortID(w.rec.DiffID)+")")
}

func (w *walker) entry(hdr *tar.Header, r io.Reader) error {
	p, reason := cleanPath(hdr.Name)
	if p == "" {
		if reason != "" {
			w.warnf("skipped tar entry %q: %s", hdr.Name, reason)
		}
		return nil
	}
	dir, base := path.Split(p)
	switch {
	case base == ".wh..wh..opq":
		w.rec.Opaque = append(w.rec.Opaque, strings.TrimSuffix(dir, "/"))
		return nil
	case strings.HasPrefix(base, ".wh."):
		w.rec.Whiteouts = append(w.rec.Whiteouts, dir+strings.TrimPrefix(base, ".wh."))
		return nil
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		w.rec.Entries = append(w.rec.Entries, p+"/")
		return nil
	case tar.TypeSymlink:
		w.rec.Entries = append(w.rec.Entries, p)
		w.rec.Links[p] = hdr.Linkname
		return nil
	case tar.TypeLink:
		w.rec.Entries = append(w.rec.Entries, p)
		target, _ := cleanPath(hdr.Linkname)
		if i, ok := w.files[target]; ok && target != p {
			w.add(w.rec.Files[i].at(p))
		}
		if v, ok := w.latest[target]; ok && target != p {
			seq := w.version(p)
			w.contentOf[seq] = w.contentOf[v]
		}
		return nil
	case tar.TypeReg:
		w.rec.Entries = append(w.rec.Entries, p)
		return w.file(p, hdr, r)
	default:
		w.rec.Entries = append(w.rec.Entries, p)
		return nil
	}
}

func (w *walker) add(fr fileRecord) {
	if i, ok := w.files[fr.Path]; ok {
		w.rec.Files[i] = fr
		return
	}
	w.files[fr.Path] = len(w.rec.Files)
	w.rec.Files = append(w.rec.Files, fr)
}

// file runs the catalogers that want the regular file p, reading its
// content only when one does, within the size limits.
func (w *walker) file(p string, hdr *tar.Header, r io.Reader) error {
	if i, ok := w.files[p]; ok {
		// The same path written twice in one layer: the later one wins.
		w.rec.Files[i] = fileRecord{Path: p}
	}
	seq := w.version(p)
	kind := kindOf(p)
	goCandidate := kind == kindNone && hdr.Mode&0o111 != 0 && hdr.Size >= 1024
	secrets := w.opts.Secrets && hdr.Size > 0 && hdr.Size <= w.opts.MaxSecretFileSize && !skipSecrets(p)
	if kind == kindNone && !goCandidate && !secrets {
		return nil
	}
	if kind != kindNone && hdr.Size > w.opts.MaxFileSize {
		w.warnf("skipped /%s: %d bytes is over the %d-byte file limit", p, hdr.Size, w.opts.MaxFileSize)
		return nil
	}
	var head []byte
	if goCandidate {
		head = make([]byte, min(4, hdr.Size))
		if _, err := io.ReadFull(r, head); err != nil {
			return err
		}
		goCandidate = isExecutable(head)
		if goCandidate && hdr.Size > w.opts.MaxFileSize {
			w.warnf("skipped executable /%s: %d bytes is over the %d-byte file limit", p, hdr.Size, w.opts.MaxFileSize)
			return nil
		}
		if !goCandidate && !secrets {
			return nil
		}
	}
	content := w.content(hdr.Size)
	n := copy(content, head)
	if _, err := io.ReadFull(r, content[n:]); err != nil {
		return err
	}
	fr := fileRecord{Path: p}
	w.guard(p, func() {
		if kind != kindNone {
			if err := w.catalog(kind, &fr, content); err != nil {
				w.warnf("/%s: %v", p, err)
			}
		}
		if goCandidate {
			fr.Packages = append(fr.Packages, goBinaryPackages(content)...)
		}
	})
	if secrets {
		if w.secrets == nil {
			w.secrets = newSecretScan()
		}
		w.secrets.add(seq, p, content)
	}
	if fr.OS != nil || len(fr.Packages) > 0 {
		for i := range fr.Packages {
			fr.Packages[i].Path = "/" + p
		}
		w.add(fr)
	}
	return nil
}

// guard runs a cataloger over the untrusted content of p; a panic in a
// parser becomes a warning about that file instead of ending the scan.
func (w *walker) guard(p string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			w.warnf("/%s: cataloger failed on malformed content: %v", p, r)
		}
	}()
	f()
}

func isExecutable(head []byte) bool {
	s := string(head)
	return strings.HasPrefix(s, "\x7fELF") || strings.HasPrefix(s, "MZ") ||
		s == "\xcf\xfa\xed\xfe" || s == "\xce\xfa\xed\xfe" || s == "\xca\xfe\xba\xbe"
}
