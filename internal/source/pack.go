package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// packLimits bounds what one fetch may bring in. go-git inflates every
// object of a pack into memory, one at a time, while it indexes it, so a
// single blob of a few GiB of zeros — a few MiB on the wire — would take
// the agent past its memory limit before writeSnapshot ever saw its size.
type packLimits struct {
	pack    int64 // bytes of the pack as received
	object  int64 // bytes of any object once inflated (a delta: its result)
	objects uint32
	// inflated bounds the sum of every object's inflated size: what the
	// check and go-git's indexer inflate, hash and resolve after the
	// transfer (10 KiB on the wire can be 10 MiB of work, many times).
	inflated int64
}

// boundedStorage is an on-disk object storage whose incoming packs are
// spooled to a file and checked against packLimits before go-git reads
// them.
type boundedStorage struct {
	*filesystem.Storage
	ctx      context.Context // the fetch's: the check stops with it
	spoolDir string
	limits   packLimits
}

// PackfileWriter is what go-git writes a fetched pack to
// (storer.PackfileWriter); it shadows the filesystem storage's own.
func (s *boundedStorage) PackfileWriter() (io.WriteCloser, error) {
	f, err := os.CreateTemp(s.spoolDir, "incoming-*.pack")
	if err != nil {
		return nil, fmt.Errorf("spooling fetched pack: %w", err)
	}
	return &spool{f: f, s: s}, nil
}

type spool struct {
	f   *os.File
	s   *boundedStorage
	n   int64
	err error
}

func (w *spool) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.n+int64(len(p)) > w.s.limits.pack {
		w.err = fmt.Errorf("%w: the fetched pack exceeds %d bytes", ErrUnsafe, w.s.limits.pack)
		return 0, w.err
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("spooling fetched pack: %w", err)
	}
	return n, w.err
}

// Close checks the spooled pack and only then hands it to the storage.
func (w *spool) Close() (err error) {
	defer func() {
		_ = w.f.Close()
		_ = os.Remove(w.f.Name())
	}()
	if w.err != nil || w.n == 0 {
		return w.err
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading spooled pack: %w", err)
	}
	if err := checkPack(w.s.ctx, w.f, w.s.limits); err != nil {
		return err
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading spooled pack: %w", err)
	}
	pw, err := w.s.Storage.PackfileWriter()
	if err != nil {
		return err
	}
	if _, err := io.Copy(pw, w.f); err != nil {
		_ = pw.Close()
		return fmt.Errorf("storing fetched pack: %w", err)
	}
	return pw.Close()
}

// checkPack reads every object header of the pack in r and refuses one
// that would inflate beyond l.object. Base objects declare their size in
// their header; a delta declares its result's size at the start of its
// (small, bounded) instructions, which are inflated here and thrown away.
// Nothing is kept in memory but the few bytes of each delta's header.
func checkPack(ctx context.Context, r io.Reader, l packLimits) error {
	sc := packfile.NewScanner(r)
	_, count, err := sc.Header()
	if err != nil {
		return fmt.Errorf("reading fetched pack: %w", err)
	}
	if count > l.objects {
		return fmt.Errorf("%w: the fetched pack holds %d objects, limit %d", ErrUnsafe, count, l.objects)
	}
	var total int64
	for i := range count {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("checking fetched pack: %w", err)
			}
		}
		oh, err := sc.NextObjectHeader()
		if err != nil {
			return fmt.Errorf("reading fetched pack: %w", err)
		}
		size := oh.Length
		switch oh.Type {
		case plumbing.OFSDeltaObject, plumbing.REFDeltaObject:
			// Instructions larger than their bounded result are refused
			// as such: an insert carries at most 127 bytes per byte of
			// overhead.
			if oh.Length > l.object+l.object/64+64 {
				return tooLarge("delta", oh.Length, l.object)
			}
			var h deltaHeader
			if _, _, err := sc.NextObject(&h); err != nil {
				return fmt.Errorf("reading fetched pack: %w", err)
			}
			if size, err = h.target(); err != nil {
				return err
			}
		}
		if size > l.object {
			return tooLarge(oh.Type.String(), size, l.object)
		}
		// Checked before the next header, which inflates this object.
		if total += size; total > l.inflated {
			return fmt.Errorf("%w: the fetched pack's objects inflate to more than %d bytes", ErrUnsafe, l.inflated)
		}
	}
	return nil
}

func tooLarge(kind string, size, limit int64) error {
	return fmt.Errorf("%w: the repository holds a %s object of %d bytes, limit %d (objects from the commit's history count too when a commit is pinned)", ErrUnsafe, kind, size, limit)
}

// deltaHeader keeps the first bytes of a delta's instructions: two
// variable-length sizes, the base's and the result's.
type deltaHeader struct {
	b []byte
}

func (h *deltaHeader) Write(p []byte) (int, error) {
	if room := 2*binaryMaxVarint - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// binaryMaxVarint is the longest size a delta header can hold that fits an
// int64 (7 bits per byte).
const binaryMaxVarint = 9

var errDeltaHeader = errors.New("malformed delta header in fetched pack")

func (h *deltaHeader) target() (int64, error) {
	b := h.b
	var v int64
	for range 2 { // the base's size, then the result's
		v = 0
		var shift uint
		for i := 0; ; i++ {
			if i >= len(b) || i >= binaryMaxVarint {
				return 0, errDeltaHeader
			}
			v |= int64(b[i]&0x7f) << shift
			shift += 7
			if b[i]&0x80 == 0 {
				b = b[i+1:]
				break
			}
		}
	}
	if v < 0 {
		return 0, errDeltaHeader
	}
	return v, nil
}
