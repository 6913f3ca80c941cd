package oci

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// MaxZstdWindow is the largest zstd window OpenLayer accepts (128 MiB, what
// `zstd --long` uses); a frame asking for more is refused rather than
// allocated. Image builders use 8 MiB or less.
const MaxZstdWindow = 128 << 20

// Read-ahead: decompression runs this far ahead of the reader.
const (
	aheadChunk  = 256 << 10
	aheadChunks = 4
)

// StoresCompressed reports whether the source keeps layers as compressed
// blobs, so that v1.Layer.Compressed returns the stored bytes (registry and
// layout). A docker-archive tarball may keep them uncompressed, and then
// Compressed would compress them.
func (s Source) StoresCompressed() bool {
	return s.Kind == KindRegistry || s.Kind == KindLayout
}

// OpenLayer returns the uncompressed tar stream of l.
//
// With stored true (see Source.StoresCompressed) the compressed bytes are
// read and decompressed here, faster than with the standard library's gzip
// that go-containerregistry uses: gzip or zstd by their magic bytes,
// anything else passed through as an uncompressed tar, as
// go-containerregistry does. zstd is github.com/klauspost/compress; gzip is
// too, or Intel ISA-L in a build with the tag isal (GzipInflater says
// which; inflate_isal.go says why). Otherwise l.Uncompressed
// is used. Either way decompression runs in its own goroutine, a bounded
// distance (1 MiB) ahead of the reader, so it overlaps with whatever the
// reader does with the tar. The caller bounds how much it reads: nothing
// here limits the decompressed size.
func OpenLayer(l v1.Layer, stored bool) (io.ReadCloser, error) {
	if !stored {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		return newReadAhead(rc, rc.Close), nil
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	d, err := decompress(rc)
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	return newReadAhead(d, func() error {
		// A decompressor's Close repeats the error its Read returned (a
		// reader that stops at the end of the tar may never see it), so
		// only the blob's own Close counts, as in go-containerregistry.
		_ = d.Close()
		return rc.Close()
	}), nil
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress picks the decompressor for r by its first bytes.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading layer: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		z, err := newGzipReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading gzip layer: %w", err)
		}
		return z, nil
	case bytes.HasPrefix(head, zstdMagic):
		z, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(MaxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("reading zstd layer: %w", err)
		}
		return zstdCloser{z}, nil
	}
	return io.NopCloser(br), nil
}

// zstdCloser gives a zstd decoder the Close of an io.Closer (it stops the
// decoder's goroutines).
type zstdCloser struct{ *zstd.Decoder }

func (z zstdCloser) Close() error {
	z.Decoder.Close()
	return nil
}

// readAhead reads src in its own goroutine into a few fixed buffers, so the
// work behind src.Read (decompression) overlaps with the reader's.
type readAhead struct {
	full      chan chunk
	free      chan []byte
	done      chan struct{}
	exited    chan struct{}
	closeSrc  func() error
	closeOnce sync.Once
	closeErr  error

	cur []byte // unread part of the chunk being read
	buf []byte // the whole buffer behind cur, returned to free when read
	err error  // the sticky error after the last chunk
}

type chunk struct {
	buf []byte
	n   int
	err error
}

func newReadAhead(src io.Reader, closeSrc func() error) *readAhead {
	ra := &readAhead{
		full:     make(chan chunk, aheadChunks),
		free:     make(chan []byte, aheadChunks),
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
		closeSrc: closeSrc,
	}
	for range aheadChunks {
		ra.free <- make([]byte, aheadChunk)
	}
	go ra.fill(src)
	return ra
}

// fill runs in its own goroutine until src ends or fails, or Close is
// called.
func (ra *readAhead) fill(src io.Reader) {
	defer close(ra.exited)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.done:
			return
		}
		n, err := fillBuf(src, buf)
		select {
		case ra.full <- chunk{buf: buf, n: n, err: err}:
		case <-ra.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// fillBuf reads into buf until it is full or src fails; unlike io.ReadFull
// it keeps src's error as it is (a truncated gzip stream's
// io.ErrUnexpectedEOF stays an error, a clean end stays io.EOF).
func fillBuf(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 && n < len(buf) {
			// A reader that returns nothing without error: try again, as
			// io.ReadFull does.
			continue
		}
	}
	return n, nil
}

// next makes the next chunk current, returning the previous buffer to the
// filler; false means the stream has ended (ra.err says how).
func (ra *readAhead) next() bool {
	if ra.buf != nil {
		ra.free <- ra.buf // never blocks: free holds every buffer
		ra.buf = nil
	}
	if ra.err != nil {
		return false
	}
	var c chunk
	select {
	case c = <-ra.full:
	case <-ra.exited:
		// Closed, or the filler is done: take what it left, if anything.
		select {
		case c = <-ra.full:
		default:
			ra.err = io.ErrClosedPipe
			return false
		}
	}
	ra.buf, ra.cur, ra.err = c.buf, c.buf[:c.n], c.err
	return true
}

// Read implements io.Reader.
func (ra *readAhead) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(ra.cur) == 0 {
		if !ra.next() {
			return 0, ra.err
		}
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Discard skips n bytes without copying them, for readers that skip file
// contents (archive/tar, through Seek on its source). It returns how many
// were skipped, and the stream's error (io.EOF at a clean end) when it
// ended first.
func (ra *readAhead) Discard(n int64) (int64, error) {
	var skipped int64
	for skipped < n {
		if len(ra.cur) == 0 {
			if !ra.next() {
				return skipped, ra.err
			}
			continue
		}
		k := int(min(n-skipped, int64(len(ra.cur))))
		ra.cur = ra.cur[k:]
		skipped += int64(k)
	}
	return skipped, nil
}

// Close stops the read-ahead goroutine and closes the source. It is safe
// to call more than once.
func (ra *readAhead) Close() error {
	ra.closeOnce.Do(func() {
		close(ra.done)
		<-ra.exited
		ra.closeErr = ra.closeSrc()
	})
	return ra.closeErr
}
