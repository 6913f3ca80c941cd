package oci

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// BenchmarkInflate inflates one gzip stream with klauspost/compress and
// with GzipInflater (ISA-L when built with -tags isal), in the same run,
// read in 256 KiB pieces as OpenLayer's read-ahead does. The stream is the
// file BERTH_BENCH_GZIP names (a layer blob: scripts/bench-scan.sh builds
// images with a 163 MB one), else a synthetic 32 MiB layer:
//
//	BERTH_BENCH_GZIP=/tmp/berth-bench/images/large/blobs/sha256/DIGEST \
//	  go test -tags isal -run '^$' -bench BenchmarkInflate ./internal/oci/
func BenchmarkInflate(b *testing.B) {
	var gz []byte
	if path := os.Getenv("BERTH_BENCH_GZIP"); path != "" {
		var err error
		if gz, err = os.ReadFile(path); err != nil {
			b.Fatal(err)
		}
	} else {
		gz = gzipBytes(b, syntheticData(32<<20))
	}
	open := map[string]func(*bufio.Reader) (io.ReadCloser, error){
		"klauspost": func(br *bufio.Reader) (io.ReadCloser, error) { return gzip.NewReader(br) },
	}
	if GzipInflater != "klauspost/compress" {
		open[GzipInflater] = newGzipReader
	}
	// The size, and a first check that the stream is whole.
	z, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		b.Fatal(err)
	}
	size, err := io.Copy(io.Discard, z)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, aheadChunk)
	for _, name := range []string{"klauspost", GzipInflater} {
		newReader, ok := open[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				z, err := newReader(bufio.NewReaderSize(bytes.NewReader(gz), 1<<20))
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, onlyReader{z}, buf)
				if err != nil || n != size {
					b.Fatalf("inflated %d bytes, want %d: %v", n, size, err)
				}
				_ = z.Close()
			}
		})
	}
}
