package catalog

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/internal/oci"
	"github.com/berth-dev/berth/internal/testenv"
)

// bombLayer is a gzip stream of a tar holding one file of size zero bytes:
// a few hundred KiB that inflate to size.
func bombLayer(t *testing.T, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, zeroReader{}, size); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// truncatedGzipLayer is a layer whose gzip stream ends early. Registries
// and go-containerregistry's own constructors refuse such blobs (digest
// checks), so it is built by hand to reach the scanner.
type truncatedGzipLayer struct{ gz []byte }

func (l truncatedGzipLayer) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.gz))
	return h, err
}
func (l truncatedGzipLayer) DiffID() (v1.Hash, error) { return l.Digest() }
func (l truncatedGzipLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}
func (l truncatedGzipLayer) Uncompressed() (io.ReadCloser, error) {
	zr, err := gzip.NewReader(bytes.NewReader(l.gz))
	if err != nil {
		return nil, err
	}
	return zr, nil
}
func (l truncatedGzipLayer) Size() (int64, error)                { return int64(len(l.gz)), nil }
func (l truncatedGzipLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

// zstdLayer makes a zstd-compressed layer from raw tar bytes.
func zstdLayer(t *testing.T, raw []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithCompression(compression.ZStd))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// hostileTest is one case of TestHostileLayers.
type hostileTest struct {
	name     string
	raw      []byte
	layer    v1.Layer // instead of raw
	opts     Options
	wantErr  error  // errors.Is target
	errText  string // or a substring of the error
	warnings []string
	pkgs     int
}

func TestHostileLayers(t *testing.T) {
	lodash := readFile(t, "testdata/npm/lodash/package.json")
	good := tarBytes(t, file("app/node_modules/lodash/package.json", lodash), file("etc/motd", bytes.Repeat([]byte("x"), 4096)))
	bigStatus := bytes.Repeat([]byte("Package: a\nVersion: 1\n\n"), 100000) // 2.3 MB
	bomb := bombLayer(t, 256<<20)
	t.Logf("bomb layer: %d compressed bytes inflate to %d", len(bomb), 256<<20)

	tests := []hostileTest{
		{name: "truncated tar", raw: good[:len(good)-3000], errText: "unexpected EOF"},
		{name: "truncated gzip", layer: truncatedGzipLayer{gzipOf(t, good)[:200]}, errText: "unexpected EOF"},
		{name: "garbage", raw: bytes.Repeat([]byte("not a tar "), 200), errText: "reading layer"},
		{
			name: "dot-dot and absolute paths",
			raw: tarBytes(t,
				file("../../../tmp/node_modules/evil/package.json", lodash),
				file("app/../../node_modules/evil/package.json", lodash),
				file("/abs/node_modules/lodash/package.json", lodash),
				entry{name: "app/hardlink", typ: tar.TypeLink, link: "../../etc/passwd"},
				file("app/node_modules/lodash/package.json", lodash),
			),
			warnings: []string{
				`skipped tar entry "../../../tmp/node_modules/evil/package.json": path with .. element`,
				`skipped tar entry "app/../../node_modules/evil/package.json": path with .. element`,
				`skipped tar entry "/abs/node_modules/lodash/package.json": absolute path`,
			},
			pkgs: 1,
		},
		{
			name: "symlink loops",
			raw: tarBytes(t,
				symlink("etc/os-release", "os-release2"),
				symlink("etc/os-release2", "/etc/os-release"),
				symlink("usr/lib", "../usr/lib"),
				file("app/node_modules/lodash/package.json", lodash),
			),
			warnings: []string{
				"/etc/os-release: too many levels of symbolic links",
				"/usr/lib/os-release: too many levels of symbolic links",
			},
			pkgs: 1,
		},
		{name: "bomb", raw: bomb, opts: Options{MaxLayerBytes: 64 << 20}, wantErr: ErrLayerTooLarge},
		{name: "zstd", layer: zstdLayer(t, good), pkgs: 1},
		{name: "zstd bomb", layer: zstdLayer(t, tarBytes(t, file("zeros", make([]byte, 80<<20)))), opts: Options{MaxLayerBytes: 64 << 20}, wantErr: ErrLayerTooLarge},
		{
			name:     "gigantic cataloged file",
			raw:      tarBytes(t, file("var/lib/dpkg/status", bigStatus), file("app/node_modules/lodash/package.json", lodash)),
			opts:     Options{MaxFileSize: 1 << 20},
			warnings: []string{"skipped /var/lib/dpkg/status: 2300000 bytes is over the 1048576-byte file limit"},
			pkgs:     1,
		},
	}
	// Each case runs through go-containerregistry's decompression and
	// through berth's own (oci.OpenLayer with stored layers).
	for _, tc := range tests {
		for _, stored := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stored=%t", tc.name, stored), func(t *testing.T) {
				tc.run(t, stored)
			})
		}
	}
}

// run scans the case's layer, read as stored (oci.OpenLayer) or through
// go-containerregistry, and checks the outcome.
func (tc hostileTest) run(t *testing.T, stored bool) {
	t.Helper()
	opts, l := tc.opts, tc.layer
	root := t.TempDir()
	opts.StoredCompressed = stored
	opts.CacheDir = filepath.Join(root, "cache")
	opts.Secrets = true
	if l == nil {
		l = layerOf(t, tc.raw)
	}
	inv, err := Scan(context.Background(), image(t, l), opts)
	switch {
	case tc.wantErr != nil || tc.errText != "":
		if err == nil {
			t.Fatalf("no error; inventory %+v", inv)
		}
		if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Fatalf("error %v, want %v", err, tc.wantErr)
		}
		if !strings.Contains(err.Error(), tc.errText) {
			t.Fatalf("error %q does not contain %q", err, tc.errText)
		}
		t.Logf("error: %v", err)
	case err != nil:
		t.Fatal(err)
	default:
		var got []string
		for _, w := range inv.Warnings {
			msg, _, _ := strings.Cut(w, " (layer ")
			got = append(got, msg)
		}
		if strings.Join(got, "\n") != strings.Join(tc.warnings, "\n") {
			t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.warnings, "\n"))
		}
		if len(inv.Packages) != tc.pkgs {
			t.Errorf("got %d packages, want %d: %+v", len(inv.Packages), tc.pkgs, inv.Packages)
		}
	}
	// Nothing was written outside the cache directory.
	err = filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && !strings.HasPrefix(p, opts.CacheDir) {
			t.Errorf("scan wrote %s outside the cache", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBombByRatio scans, with the default limits, a bomb layer pushed to a
// registry: the layer sizes from its manifest expose it long before the
// absolute limit.
func TestBombByRatio(t *testing.T) {
	bomb := layerOf(t, bombLayer(t, 256<<20))
	img := image(t, layer(t, file("etc/motd", []byte("hi\n"))), bomb)
	reg := testenv.NewRegistry(t)
	ref := reg.Host + "/hostile/bomb:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	got, src, err := oci.Open(context.Background(), ref, oci.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(src.LayerSizes) != 2 {
		t.Fatalf("layer sizes %v", src.LayerSizes)
	}
	opts := DefaultOptions()
	opts.CompressedSizes = src.LayerSizes
	opts.StoredCompressed = src.StoresCompressed()
	_, err = Scan(context.Background(), got, opts)
	if !errors.Is(err, ErrLayerTooLarge) || !strings.Contains(err.Error(), diffID(t, bomb)) {
		t.Fatalf("error %v, want ErrLayerTooLarge for layer %s", err, diffID(t, bomb))
	}
	t.Log(err)

	// Without the sizes, only the absolute limit applies.
	opts.CompressedSizes = nil
	opts.MaxLayerBytes = 300 << 20
	if _, err := Scan(context.Background(), got, opts); err != nil {
		t.Fatalf("under the absolute limit: %v", err)
	}
}

func TestLayerLimit(t *testing.T) {
	const id = "sha256:x"
	tests := []struct {
		name  string
		size  int64 // compressed; 0 = unknown
		ratio int64
		want  int64
	}{
		{name: "size unknown", want: 8 << 30},
		{name: "small layer gets the floor", size: 1000, ratio: 200, want: ratioFloor},
		{name: "ratio", size: 10 << 20, ratio: 200, want: 2000 << 20},
		{name: "large layer: the absolute limit", size: 160 << 20, ratio: 200, want: 8 << 30},
		{name: "ratio check off", size: 1000, ratio: 0, want: 8 << 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			o.MaxLayerRatio = tc.ratio
			if tc.size > 0 {
				o.CompressedSizes = map[string]int64{id: tc.size}
			}
			if got := o.layerLimit(id); got != tc.want {
				t.Errorf("layerLimit = %d, want %d", got, tc.want)
			}
		})
	}
}
