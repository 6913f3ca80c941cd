package catalog

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// entry is one tar entry of a test layer.
type entry struct {
	name string
	body []byte
	mode int64
	typ  byte   // tar.TypeReg when zero
	link string // symlink or hard link target
}

func file(name string, body []byte) entry { return entry{name: name, body: body, mode: 0o644} }
func exe(name string, body []byte) entry  { return entry{name: name, body: body, mode: 0o755} }
func dir(name string) entry               { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}
func whiteout(name string) entry {
	return file(filepath.Join(filepath.Dir(name), ".wh."+filepath.Base(name)), nil)
}

// tarBytes builds an uncompressed tar of entries.
func tarBytes(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: typ, Linkname: e.link, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerOf makes a gzip-compressed layer from raw tar (or any) bytes.
func layerOf(t testing.TB, raw []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func layer(t testing.TB, entries ...entry) v1.Layer { return layerOf(t, tarBytes(t, entries...)) }

// image stacks layers, bottom first.
func image(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func diffID(t testing.TB, l v1.Layer) string {
	t.Helper()
	h, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countingImage wraps an image so every layer read is counted.
type countingImage struct {
	v1.Image
	reads *atomic.Int64
}

type countingLayer struct {
	v1.Layer
	reads *atomic.Int64
}

func (c countingLayer) Uncompressed() (io.ReadCloser, error) {
	c.reads.Add(1)
	return c.Layer.Uncompressed()
}

func (c countingLayer) Compressed() (io.ReadCloser, error) {
	c.reads.Add(1)
	return c.Layer.Compressed()
}

func (c countingImage) Layers() ([]v1.Layer, error) {
	ls, err := c.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = countingLayer{Layer: l, reads: c.reads}
	}
	return out, nil
}

// findPkg returns the packages named name.
func findPkg(inv *Inventory, name string) []Package {
	var out []Package
	for _, p := range inv.Packages {
		if p.Name == name {
			out = append(out, p)
		}
	}
	return out
}

var (
	goBinOnce sync.Once
	goBins    map[string][]byte
	goBinErr  error
)

// goBinaries builds two real Go binaries from tiny modules: "plain"
// depends on golang.org/x/text v0.3.5, "replaced" requires v0.3.5 but
// replaces it with v0.3.7. Both versions have published advisories.
func goBinaries(t testing.TB) map[string][]byte {
	t.Helper()
	goBinOnce.Do(func() {
		root, err := os.MkdirTemp("", "catalog-gobin-")
		if err != nil {
			goBinErr = err
			return
		}
		defer func() { _ = os.RemoveAll(root) }()
		goBins = map[string][]byte{}
		for name, extra := range map[string]string{
			"plain":    "",
			"replaced": "replace golang.org/x/text v0.3.5 => golang.org/x/text v0.3.7\n",
		} {
			dir := filepath.Join(root, name)
			must := func(err error) {
				if err != nil && goBinErr == nil {
					goBinErr = err
				}
			}
			must(os.MkdirAll(dir, 0o755))
			must(os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/"+name+"\n\ngo 1.22\n\nrequire golang.org/x/text v0.3.5\n"+extra), 0o644))
			must(os.WriteFile(filepath.Join(dir, "main.go"), []byte(`package main

import (
	"fmt"

	"golang.org/x/text/language"
)

func main() { fmt.Println(language.English) }
`), 0o644))
			for _, args := range [][]string{{"mod", "tidy"}, {"build", "-trimpath", "-o", "app", "."}} {
				cmd := exec.Command("go", args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
				if out, err := cmd.CombinedOutput(); err != nil {
					must(fmt.Errorf("go %v: %w\n%s", args, err, out))
				}
			}
			b, err := os.ReadFile(filepath.Join(dir, "app"))
			must(err)
			goBins[name] = b
		}
	})
	if goBinErr != nil {
		t.Fatalf("building Go test binaries: %v", goBinErr)
	}
	return goBins
}

// gzipOf compresses b.
func gzipOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
