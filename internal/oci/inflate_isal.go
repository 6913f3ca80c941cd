//go:build isal && cgo

package oci

// Why cgo: inflating gzip layers is 80–90% of a cold scan, on one core per
// layer. Intel ISA-L's igzip inflates 2–3× faster than zlib and
// github.com/klauspost/compress (the pure-Go default, itself 1.3× the
// standard library) with hand-written SIMD code, and no well-kept pure-Go
// inflater comes near it. So it is an opt-in: built only with the tag isal
// (`make build` adds it when libisal is installed), linked from the
// system's libisal, and the pure-Go path stays the default everywhere else.
//
// What ISA-L sees of Go memory: the input and output slices of one call,
// passed as arguments; the C helper clears the state's pointers to them
// before it returns, so no Go pointer outlives a call (the cgo rules). The
// state itself (85 KiB) is C memory, freed by Close.

/*
#cgo LDFLAGS: -lisal
#include <stdint.h>
#include <stdlib.h>
#include <isa-l/igzip_lib.h>

struct berth_isal_result {
	int ret;
	uint32_t used;
	uint32_t made;
	int finished;
};

static struct inflate_state *berth_isal_new(void) {
	struct inflate_state *s = malloc(sizeof *s);
	if (s != NULL) {
		isal_inflate_init(s);
		s->crc_flag = ISAL_GZIP;
	}
	return s;
}

static void berth_isal_reset(struct inflate_state *s) {
	isal_inflate_reset(s);
	s->crc_flag = ISAL_GZIP;
}

static struct berth_isal_result berth_isal_inflate(struct inflate_state *s,
		uint8_t *in, uint32_t in_len, uint8_t *out, uint32_t out_len) {
	struct berth_isal_result r;
	s->next_in = in;
	s->avail_in = in_len;
	s->next_out = out;
	s->avail_out = out_len;
	r.ret = isal_inflate(s);
	r.used = in_len - s->avail_in;
	r.made = out_len - s->avail_out;
	r.finished = s->block_state == ISAL_BLOCK_FINISH;
	s->next_in = NULL;
	s->next_out = NULL;
	s->avail_in = 0;
	s->avail_out = 0;
	return r;
}
*/
import "C"

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"unsafe"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// GzipInflater names the gzip inflater compiled in: Intel ISA-L (libisal,
// through cgo) in this build, github.com/klauspost/compress without the
// build tag isal.
const GzipInflater = "isa-l"

// isalReader inflates a gzip stream with ISA-L's streaming isal_inflate,
// member after member (RFC 1952 allows several), checking each member's
// CRC-32 and size. Its errors are the ones klauspost/compress returns for
// the same faults, so callers see no difference: gzip.ErrHeader for a bad
// header or data after the last member that is not another member,
// gzip.ErrChecksum, flate.CorruptInputError, and io.ErrUnexpectedEOF for a
// stream that ends inside a member.
type isalReader struct {
	src      *bufio.Reader
	st       *C.struct_inflate_state
	cleanup  runtime.Cleanup
	header   bool  // a member's header comes next
	finished bool  // the current member has ended
	offset   int64 // compressed bytes consumed, for error messages
	err      error // sticky
}

var errIsalClosed = errors.New("gzip: read after close")

// newGzipReader inflates the gzip stream in br, every member of it, with
// ISA-L. Unlike gzip.NewReader it reads nothing yet: a bad header is
// reported by the first Read.
func newGzipReader(br *bufio.Reader) (io.ReadCloser, error) {
	st := C.berth_isal_new()
	if st == nil {
		return nil, errors.New("gzip: allocating the ISA-L inflate state")
	}
	z := &isalReader{src: br, st: st, header: true}
	// A reader dropped without Close still frees its C memory.
	z.cleanup = runtime.AddCleanup(z, func(st *C.struct_inflate_state) { C.free(unsafe.Pointer(st)) }, st)
	return z, nil
}

// Read implements io.Reader.
func (z *isalReader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if z.st == nil {
		return 0, errIsalClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	p = p[:min(len(p), math.MaxUint32)]
	for {
		if z.finished {
			// The stream may end cleanly only between members; what
			// follows must be another member (ISA-L checks its header).
			if _, err := z.src.Peek(1); err != nil {
				z.err = err // io.EOF: the clean end
				return 0, z.err
			}
			C.berth_isal_reset(z.st)
			z.finished, z.header = false, true
		}
		if z.header {
			// ISA-L ignores the reserved flag bits; RFC 1952 (2.3.1.2)
			// asks for an error, which is what klauspost/compress gives.
			if h, _ := z.src.Peek(4); len(h) == 4 && h[3]&0xe0 != 0 {
				z.err = gzip.ErrHeader
				return 0, z.err
			}
			z.header = false
		}
		in, err := z.src.Peek(max(z.src.Buffered(), 1))
		if len(in) == 0 {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // inside a member
			}
			z.err = err
			return 0, z.err
		}
		in = in[:min(len(in), math.MaxUint32)]
		r := C.berth_isal_inflate(z.st, (*C.uint8_t)(&in[0]), C.uint32_t(len(in)), (*C.uint8_t)(&p[0]), C.uint32_t(len(p)))
		used, made := int(r.used), int(r.made)
		_, _ = z.src.Discard(used) // never fails: the bytes are buffered
		z.offset += int64(used)
		z.finished = r.finished != 0
		if r.ret != C.ISAL_DECOMP_OK {
			z.err = z.isalError(int(r.ret))
			return made, z.err
		}
		if made > 0 {
			return made, nil
		}
		if used == 0 && !z.finished {
			// Input and room for output, and nothing happened: never
			// seen, but a loop here would hang the scan.
			z.err = fmt.Errorf("gzip: ISA-L inflate stopped at byte %d", z.offset)
			return 0, z.err
		}
	}
}

// isalError turns an isal_inflate return code into the error
// klauspost/compress gives for the same fault.
func (z *isalReader) isalError(ret int) error {
	switch ret {
	case C.ISAL_INVALID_WRAPPER, C.ISAL_UNSUPPORTED_METHOD:
		return gzip.ErrHeader
	case C.ISAL_INCORRECT_CHECKSUM:
		return gzip.ErrChecksum
	case C.ISAL_INVALID_BLOCK, C.ISAL_INVALID_SYMBOL, C.ISAL_INVALID_LOOKBACK:
		return flate.CorruptInputError(z.offset)
	}
	return fmt.Errorf("gzip: ISA-L inflate failed with code %d at byte %d", ret, z.offset)
}

// Close frees the inflate state; it does not close the source. It is safe
// to call more than once.
func (z *isalReader) Close() error {
	if z.st != nil {
		z.cleanup.Stop()
		C.free(unsafe.Pointer(z.st))
		z.st = nil
	}
	return nil
}
