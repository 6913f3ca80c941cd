package oci

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// rawLayer is a layer whose stored bytes are given as they are.
type rawLayer struct{ stored []byte }

func (l rawLayer) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.stored))
	return h, err
}
func (l rawLayer) DiffID() (v1.Hash, error) { return l.Digest() }
func (l rawLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.stored)), nil
}
func (l rawLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, errors.New("not used")
}
func (l rawLayer) Size() (int64, error)                { return int64(len(l.stored)), nil }
func (l rawLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

func testTar(t *testing.T, size int) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i * 7 / 5)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compressed(t *testing.T, raw []byte, c compression.Compression) []byte {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithCompression(c))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenLayer(t *testing.T) {
	raw := testTar(t, 3<<20) // several read-ahead chunks
	gz := compressed(t, raw, compression.GZip)
	zst := compressed(t, raw, compression.ZStd)
	tests := []struct {
		name    string
		stored  []byte
		want    []byte
		wantErr error
	}{
		{name: "gzip", stored: gz, want: raw},
		{name: "zstd", stored: zst, want: raw},
		{name: "uncompressed", stored: raw, want: raw},
		{name: "empty", stored: nil, want: []byte{}},
		{name: "truncated gzip", stored: gz[:len(gz)/2], wantErr: io.ErrUnexpectedEOF},
		{name: "truncated zstd", stored: zst[:len(zst)/2], wantErr: io.ErrUnexpectedEOF},
		{name: "gzip with a bad checksum", stored: append(append([]byte{}, gz[:len(gz)-8]...), 1, 2, 3, 4, 5, 6, 7, 8), wantErr: errors.New("any")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := OpenLayer(rawLayer{tc.stored}, true)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if cerr := rc.Close(); cerr != nil {
				t.Errorf("close: %v", cerr)
			}
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, read %d bytes", len(got))
				}
				if tc.wantErr.Error() != "any" && !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("read %d bytes, want the %d of the tar", len(got), len(tc.want))
			}
		})
	}
}

// TestOpenLayerDiscardAndClose skips through a stream the way archive/tar
// does and closes it half read: the read-ahead goroutine must stop, and
// reads after Close fail instead of hanging.
func TestOpenLayerDiscardAndClose(t *testing.T) {
	raw := testTar(t, 3<<20)
	rc, err := OpenLayer(rawLayer{compressed(t, raw, compression.GZip)}, true)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := rc.(interface{ Discard(int64) (int64, error) })
	if !ok {
		t.Fatal("no Discard")
	}
	if n, err := d.Discard(1<<20 + 3); n != 1<<20+3 || err != nil {
		t.Fatalf("discard: %d, %v", n, err)
	}
	b := make([]byte, 100)
	if _, err := io.ReadFull(rc, b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, raw[1<<20+3:1<<20+103]) {
		t.Fatal("read after discard is not the tar's bytes")
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := io.ReadAll(rc); err == nil {
		t.Fatal("read after close did not fail")
	}
	// Discarding past the end reports the end.
	rc, err = OpenLayer(rawLayer{raw}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := rc.(interface{ Discard(int64) (int64, error) }).Discard(int64(len(raw)) + 10)
	if n != int64(len(raw)) || !errors.Is(err, io.EOF) {
		t.Fatalf("discard past the end: %d, %v", n, err)
	}
}
