package vulndb

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// An ecosystem file is
//
//	uint64 big-endian  length of the index
//	index              gob of ecoIndex
//	records            per package, the JSON of its []Advisory
//
// so that a lookup decodes only its own package.

// ecoIndex lists the packages of an ecosystem file, sorted by name, with
// where each one's records start in the records section; package i's end
// where package i+1's start.
type ecoIndex struct {
	Names  []string
	Starts []int64
}

// ecosystemFile is an opened ecosystem file.
type ecosystemFile struct {
	path    string
	index   ecoIndex
	byName  map[string]int
	records []byte
	decoded map[string][]Advisory
}

// maxIndexBytes bounds the index a corrupt length could claim.
const maxIndexBytes = 256 << 20

func openEcosystem(path string) (*ecosystemFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("opening vulnerability data: %w", err)
	}
	corrupt := func(why string) error {
		return fmt.Errorf("reading %s: %s (import the data again)", path, why)
	}
	if len(data) < 8 {
		return nil, corrupt("truncated")
	}
	n := binary.BigEndian.Uint64(data)
	if n > maxIndexBytes || n > uint64(len(data)-8) { //nolint:gosec // len(data) ≥ 8 here
		return nil, corrupt("bad index length")
	}
	e := &ecosystemFile{path: path, records: data[8+n:], decoded: map[string][]Advisory{}}
	if err := gob.NewDecoder(bytes.NewReader(data[8 : 8+n])).Decode(&e.index); err != nil {
		return nil, corrupt(err.Error())
	}
	if len(e.index.Names) != len(e.index.Starts) {
		return nil, corrupt("index names and offsets differ in number")
	}
	e.byName = make(map[string]int, len(e.index.Names))
	prev := int64(0)
	for i, name := range e.index.Names {
		if s := e.index.Starts[i]; s < prev || s > int64(len(e.records)) {
			return nil, corrupt("offsets out of order")
		}
		prev = e.index.Starts[i]
		e.byName[name] = i
	}
	return e, nil
}

// lookup decodes (once) the advisories of the package stored as name.
func (e *ecosystemFile) lookup(name string) ([]Advisory, error) {
	if advs, ok := e.decoded[name]; ok {
		return advs, nil
	}
	i, ok := e.byName[name]
	if !ok {
		return nil, nil
	}
	end := int64(len(e.records))
	if i+1 < len(e.index.Starts) {
		end = e.index.Starts[i+1]
	}
	var advs []Advisory
	if err := json.Unmarshal(e.records[e.index.Starts[i]:end], &advs); err != nil {
		return nil, fmt.Errorf("reading %s, package %s: %w (import the data again)", e.path, name, err)
	}
	e.decoded[name] = advs
	return advs, nil
}

// writeEcosystem writes d as an ecosystem file.
func writeEcosystem(path string, d ecosystemData) error {
	names := make([]string, 0, len(d))
	for name := range d {
		names = append(names, name)
	}
	sort.Strings(names)
	idx := ecoIndex{Names: names, Starts: make([]int64, 0, len(names))}
	var records bytes.Buffer
	for _, name := range names {
		idx.Starts = append(idx.Starts, int64(records.Len()))
		b, err := json.Marshal(d[name])
		if err != nil {
			return fmt.Errorf("encoding %s: %w", name, err)
		}
		records.Write(b)
	}
	var head bytes.Buffer
	if err := gob.NewEncoder(&head).Encode(idx); err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	out := make([]byte, 8, 8+head.Len()+records.Len())
	binary.BigEndian.PutUint64(out, uint64(head.Len())) //nolint:gosec // a length is never negative
	out = append(out, head.Bytes()...)
	out = append(out, records.Bytes()...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("writing vulnerability data: %w", err)
	}
	return nil
}
