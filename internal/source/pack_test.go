package source

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// pack builds a version 2 pack of a 5-byte blob followed by objects
// (type, inflated content) written after it; an offset delta refers to the
// blob.
func pack(t *testing.T, objs ...packObject) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("PACK")
	_ = binary.Write(&b, binary.BigEndian, uint32(2))
	_ = binary.Write(&b, binary.BigEndian, uint32(1+len(objs)))
	all := append([]packObject{{typ: 3, data: []byte("hello")}}, objs...)
	for _, o := range all {
		off := b.Len()
		size := o.size
		if size == 0 {
			size = int64(len(o.data))
		}
		// Type and size: 3 bits of type, 4 of size, then 7 per byte.
		c := byte(o.typ<<4) | byte(size&0x0f)
		size >>= 4
		for size > 0 {
			b.WriteByte(c | 0x80)
			c = byte(size & 0x7f)
			size >>= 7
		}
		b.WriteByte(c)
		if o.typ == 6 { // offset delta: distance back to the blob at 12
			b.WriteByte(byte(off - 12))
		}
		z := zlib.NewWriter(&b)
		if _, err := z.Write(o.data); err != nil {
			t.Fatal(err)
		}
		_ = z.Close()
	}
	return b.Bytes()
}

type packObject struct {
	typ  int
	data []byte
	size int64 // declared, when not len(data)
}

func varint(v int64) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

func TestCheckPack(t *testing.T) {
	l := packLimits{pack: 1 << 30, object: 1 << 20, objects: 10, inflated: 3 << 20}
	mib := make([]byte, 1<<20)
	// A delta of a few bytes whose result is 1 GiB: copy the 5-byte base
	// over and over would do; its header says how large it gets.
	bomb := append(append(varint(5), varint(1<<30)...), 0x91, 0x00, 0x05)
	fine := append(append(varint(5), varint(10)...), 0x91, 0x00, 0x05, 0x91, 0x00, 0x05)
	tests := []struct {
		name string
		objs []packObject
		want string
	}{
		{"small objects", []packObject{{typ: 3, data: []byte("x")}, {typ: 6, data: fine}}, ""},
		{"large blob by its header", []packObject{{typ: 3, data: []byte("x"), size: 2 << 20}}, "blob object of 2097152 bytes"},
		{"delta with a large result", []packObject{{typ: 6, data: bomb}}, "ofs-delta object of 1073741824 bytes"},
		{"malformed delta header", []packObject{{typ: 6, data: []byte{0x80}}}, "malformed delta header"},
		{"too many objects", make([]packObject, 10), "holds 11 objects, limit 10"},
		// Each within the object limit, together over what may be inflated.
		{"inflating too much in all", []packObject{{typ: 3, data: mib}, {typ: 3, data: mib}, {typ: 3, data: mib}, {typ: 3, data: mib}},
			"inflate to more than 3145728 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := tt.objs
			for i := range objs {
				if objs[i].typ == 0 {
					objs[i] = packObject{typ: 3, data: []byte("y")}
				}
			}
			err := checkPack(context.Background(), bytes.NewReader(pack(t, objs...)), l)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("checkPack = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkPack = %v, want %q", err, tt.want)
			}
			if tt.name != "malformed delta header" && !errors.Is(err, ErrUnsafe) {
				t.Errorf("%v is not ErrUnsafe", err)
			}
		})
	}
}
