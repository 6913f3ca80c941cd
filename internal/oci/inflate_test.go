package oci

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/gzip"
)

// gzipBytes is raw as one gzip member.
func gzipBytes(tb testing.TB, raw []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Name = "layer.tar" // a header field for the inflater to skip
	if _, err := zw.Write(raw); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// inflate reads all of gz through newGzipReader (the inflater this build
// uses), with src wrapping how the compressed bytes arrive.
func inflate(gz []byte, src func(io.Reader) io.Reader) ([]byte, error) {
	z, err := newGzipReader(bufio.NewReaderSize(src(bytes.NewReader(gz)), 1<<20))
	if err != nil {
		return nil, err
	}
	defer z.Close()
	return io.ReadAll(z)
}

// TestGzipInflater runs the inflater compiled in (GzipInflater) through
// well-formed and hostile streams, with the compressed bytes arriving
// whole, one byte at a time and in odd pieces.
func TestGzipInflater(t *testing.T) {
	t.Logf("inflater: %s", GzipInflater)
	raw := syntheticData(3 << 20)
	raw2 := syntheticData(100 << 10)[:77777]
	gz, gz2 := gzipBytes(t, raw), gzipBytes(t, raw2)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flip := func(b []byte, at int) []byte {
		c := bytes.Clone(b)
		c[at] ^= 0x55
		return c
	}
	badMethod := flip(gz, 2) // compression method 8 is deflate
	tests := []struct {
		name    string
		gz      []byte
		want    []byte
		wantErr error // nil: no error; errAny: any error
	}{
		{name: "one member", gz: gz, want: raw},
		{name: "two members", gz: cat(gz, gz2), want: cat(raw, raw2)},
		{name: "empty member between", gz: cat(gz2, gzipBytes(t, nil), gz2), want: cat(raw2, raw2)},
		{name: "truncated in the data", gz: gz[:len(gz)/2], wantErr: io.ErrUnexpectedEOF},
		{name: "truncated in the trailer", gz: gz[:len(gz)-3], wantErr: io.ErrUnexpectedEOF},
		{name: "truncated in the header", gz: gz[:5], wantErr: io.ErrUnexpectedEOF},
		{name: "second member truncated", gz: cat(gz2, gz[:1000]), wantErr: io.ErrUnexpectedEOF},
		{name: "bad checksum", gz: flip(gz, len(gz)-6), wantErr: gzip.ErrChecksum},
		{name: "bad size", gz: flip(gz, len(gz)-2), wantErr: errAny},
		{name: "bad method", gz: badMethod, wantErr: gzip.ErrHeader},
		{name: "corrupt data", gz: flip(gz, len(gz)/3), wantErr: errAny},
		{name: "trailing garbage", gz: cat(gz2, bytes.Repeat([]byte("junk"), 10)), wantErr: gzip.ErrHeader},
		{name: "trailing zeros", gz: cat(gz2, make([]byte, 512)), wantErr: gzip.ErrHeader},
	}
	sources := map[string]func(io.Reader) io.Reader{
		"whole":      func(r io.Reader) io.Reader { return r },
		"bytewise":   iotest.OneByteReader,
		"halves":     iotest.HalfReader,
		"data+error": iotest.DataErrReader,
	}
	for _, tc := range tests {
		for sname, src := range sources {
			if sname == "bytewise" && len(tc.gz) > 200<<10 {
				continue // slow and no different
			}
			t.Run(tc.name+"/"+sname, func(t *testing.T) {
				got, err := inflate(tc.gz, src)
				switch {
				case tc.wantErr == nil && err != nil:
					t.Fatal(err)
				case tc.wantErr == nil && !bytes.Equal(got, tc.want):
					t.Fatalf("inflated %d bytes, not the %d written", len(got), len(tc.want))
				case tc.wantErr == errAny && err == nil, tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
			})
		}
	}
}

var errAny = errors.New("any error")

// TestGzipInflaterDamage cuts and damages one stream at many places: each
// read ends in an error or in the original bytes, never a panic or a hang.
func TestGzipInflaterDamage(t *testing.T) {
	raw := syntheticData(200 << 10)
	gz := gzipBytes(t, raw)
	for at := 0; at < len(gz); at += 1 + at/40 {
		if got, err := inflate(gz[:at], iotest.HalfReader); err == nil {
			t.Fatalf("cut at %d of %d: no error, %d bytes", at, len(gz), len(got))
		}
		for _, x := range []byte{0x01, 0x80, 0xff} {
			c := bytes.Clone(gz)
			c[at] ^= x
			got, err := inflate(c, func(r io.Reader) io.Reader { return r })
			if err == nil && !bytes.Equal(got, raw) {
				t.Fatalf("byte %d ^ %#x: no error, and %d bytes that differ", at, x, len(got))
			}
		}
	}
}

// FuzzGzipInflater checks the inflater compiled in against klauspost/compress
// on arbitrary streams: both fail, or both return the same bytes.
//
//	go test -tags isal -run '^$' -fuzz FuzzGzipInflater -parallel 1 -fuzztime 60s ./internal/oci/
func FuzzGzipInflater(f *testing.F) {
	raw := syntheticData(20 << 10)
	gz := gzipBytes(f, raw)
	f.Add(gz)
	f.Add(bytes.Join([][]byte{gz, gzipBytes(f, []byte("second"))}, nil))
	f.Add(gz[:len(gz)/2])
	f.Add(append(bytes.Clone(gz), 0, 0, 0))
	f.Fuzz(func(t *testing.T, gz []byte) {
		got, err := inflate(gz, func(r io.Reader) io.Reader { return r })
		var want []byte
		z, werr := gzip.NewReader(bytes.NewReader(gz))
		if werr == nil {
			want, werr = io.ReadAll(z)
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("%s: %v; klauspost/compress: %v", GzipInflater, err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("%s and klauspost/compress inflate to different bytes", GzipInflater)
		}
	})
}
