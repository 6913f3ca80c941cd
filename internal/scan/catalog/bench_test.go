package catalog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// benchImage generates a four-layer image: a Debian base (the machine's real
// dpkg database), 2,000 config-like text files (the secret scan's work),
// 300 npm packages plus a Go binary, and a 64 MiB data file no cataloger
// wants. It returns the image and its uncompressed size.
func benchImage(b *testing.B) (v1.Image, int64) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("server port host timeout retries enabled true false name value path log level debug info cache size limit user group mode region endpoint")
	var texts []entry
	for i := range 2000 {
		var sb strings.Builder
		for sb.Len() < 4096 {
			fmt.Fprintf(&sb, "%s_%s = %s%d\n", words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(100000))
		}
		texts = append(texts, file(fmt.Sprintf("etc/app/conf.d/%04d.conf", i), []byte(sb.String())))
	}
	lodash := readFile(b, "testdata/npm/lodash/package.json")
	apps := []entry{exe("usr/local/bin/app", goBinaries(b)["plain"])}
	for i := range 300 {
		apps = append(apps, file(fmt.Sprintf("srv/app/node_modules/pkg%03d/node_modules/lodash/package.json", i), lodash))
	}
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(rng.IntN(16)) // compressible, not trivially
	}
	raws := [][]byte{
		tarBytes(b, file("etc/os-release", readFile(b, "testdata/debian-12.os-release")), file("var/lib/dpkg/status", readFile(b, "/var/lib/dpkg/status"))),
		tarBytes(b, texts...),
		tarBytes(b, apps...),
		tarBytes(b, file("var/lib/data/blob.dat", data)),
	}
	var layers []v1.Layer
	var size int64
	for _, raw := range raws {
		size += int64(len(raw))
		layers = append(layers, layerOf(b, gzipOf(b, raw)))
	}
	return image(b, layers...), size
}

// BenchmarkScan measures a cold scan (every layer read and cataloged, cache
// written) against a warm one (every layer in the cache).
//
//	go test -run '^$' -bench BenchmarkScan -benchtime 5x ./internal/scan/catalog/
func BenchmarkScan(b *testing.B) {
	img, size := benchImage(b)
	opts := DefaultOptions()
	b.Run("cold", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			dir, err := os.MkdirTemp(b.TempDir(), "cache-")
			if err != nil {
				b.Fatal(err)
			}
			o := opts
			o.CacheDir = dir
			if _, err := Scan(context.Background(), img, o); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		o := opts
		o.CacheDir = b.TempDir()
		if _, err := Scan(context.Background(), img, o); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		b.ResetTimer()
		for b.Loop() {
			if _, err := Scan(context.Background(), img, o); err != nil {
				b.Fatal(err)
			}
		}
	})
}
