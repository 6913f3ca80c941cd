package oci

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BenchmarkOpenLayer reads a 32 MiB gzip layer through go-containerregistry
// (the standard library's gzip) and through OpenLayer (klauspost/compress
// and read-ahead), in the same run, so the ratio is what to compare:
//
//	go test -run '^$' -bench BenchmarkOpenLayer ./internal/oci/
func BenchmarkOpenLayer(b *testing.B) {
	raw := bytes.NewBuffer(syntheticData(32 << 20))
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw.Bytes())), nil
	}, tarball.WithCompression(compression.GZip))
	if err != nil {
		b.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		b.Fatal(err)
	}
	gz, err := io.ReadAll(rc)
	if err != nil {
		b.Fatal(err)
	}
	stored := rawLayer{gz}
	for _, bc := range []struct {
		name string
		open func(v1.Layer) (io.ReadCloser, error)
	}{
		{"go-containerregistry", func(l v1.Layer) (io.ReadCloser, error) { return readAll(l) }},
		{"OpenLayer", func(l v1.Layer) (io.ReadCloser, error) { return OpenLayer(l, true) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(raw.Len()))
			for b.Loop() {
				rc, err := bc.open(stored)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, onlyReader{rc}); err != nil || n != int64(raw.Len()) {
					b.Fatalf("read %d bytes: %v", n, err)
				}
				_ = rc.Close()
			}
		})
	}
}

// readAll opens l the way go-containerregistry does for a compressed layer
// (registry and layout images).
func readAll(l v1.Layer) (io.ReadCloser, error) {
	cl, err := partial.CompressedToLayer(l)
	if err != nil {
		return nil, err
	}
	return cl.Uncompressed()
}

// onlyReader hides WriteTo, so both readers are read with Read as the tar
// reader does.
type onlyReader struct{ io.Reader }

// syntheticData is n bytes that compress about as well as a layer of text
// and binaries (to a third).
func syntheticData(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := [][]byte{[]byte("layer "), []byte("image "), []byte("package "), []byte("version "), []byte("\n"), {0, 0, 0, 1}}
	raw := make([]byte, 0, n+16)
	for len(raw) < n {
		if rng.IntN(4) == 0 {
			raw = append(raw, byte(rng.IntN(256)))
			continue
		}
		raw = append(raw, words[rng.IntN(len(words))]...)
	}
	return raw
}
