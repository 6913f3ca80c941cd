//go:build !isal || !cgo

package oci

import (
	"bufio"
	"io"

	"github.com/klauspost/compress/gzip"
)

// GzipInflater names the gzip inflater compiled in: github.com/klauspost/compress
// in this build, Intel ISA-L with the build tag isal (see inflate_isal.go).
const GzipInflater = "klauspost/compress"

// newGzipReader inflates the gzip stream in br, every member of it.
func newGzipReader(br *bufio.Reader) (io.ReadCloser, error) {
	return gzip.NewReader(br)
}
