package policy

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// RefineLines moves each violation's Source.Line from the start of its
// object to the line of the offending field, reading files with read
// (relative paths as in Source.File). Violations whose file cannot be read
// or whose field cannot be found keep the object's line. Call it before
// printing; Evaluate itself does no I/O.
func (r *Report) RefineLines(read func(file string) ([]byte, error)) {
	docs := map[string][]*yaml.Node{}
	for i := range r.Violations {
		v := &r.Violations[i]
		if v.Field == "" || v.Source.File == "" || v.Source.Line == 0 {
			continue
		}
		nodes, ok := docs[v.Source.File]
		if !ok {
			b, err := read(v.Source.File)
			if err == nil {
				nodes = parseDocs(b)
			}
			docs[v.Source.File] = nodes
		}
		if line := fieldLine(nodes, v.Source.Line, v.Field); line > 0 {
			v.Source.Line = line
		}
	}
	r.sort()
}

// parseDocs parses every document of a YAML stream; it stops at the first
// error (the manifest loader has already accepted the file).
func parseDocs(b []byte) []*yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) || err != nil {
			return out
		}
		if len(n.Content) > 0 {
			out = append(out, n.Content[0])
		}
	}
}

// fieldLine finds field in the first document whose content starts at or
// after docLine (the object's line may point at leading comments).
func fieldLine(docs []*yaml.Node, docLine int, field string) int {
	for _, d := range docs {
		if d.Line < docLine {
			continue
		}
		n, line := d, 0
		for _, seg := range splitField(field) {
			n, line = child(n, seg)
			if n == nil {
				return 0
			}
		}
		return line
	}
	return 0
}

// child steps into a mapping key or a sequence index and returns the value
// and the line that names it (the key's line, or the item's).
func child(n *yaml.Node, seg string) (*yaml.Node, int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg {
				return n.Content[i+1], n.Content[i].Line
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i], n.Content[i].Line
		}
	}
	return nil, 0
}

// splitField splits `a.b[2].c["x.y"]` into a, b, 2, c, x.y.
func splitField(f string) []string {
	var out []string
	for len(f) > 0 {
		switch f[0] {
		case '.':
			f = f[1:]
		case '[':
			end := strings.IndexByte(f, ']')
			if strings.HasPrefix(f, `["`) {
				// a quoted key: find the closing quote, honouring escapes
				for i := 2; i < len(f); i++ {
					if f[i] == '\\' {
						i++
						continue
					}
					if f[i] == '"' {
						if k, err := strconv.Unquote(f[1 : i+1]); err == nil {
							out = append(out, k)
						}
						end = i + 1
						break
					}
				}
			} else if end > 0 {
				out = append(out, f[1:end])
			}
			if end < 0 || end+1 > len(f) {
				return out
			}
			f = f[end+1:]
		default:
			end := strings.IndexAny(f, ".[")
			if end < 0 {
				end = len(f)
			}
			out = append(out, f[:end])
			f = f[end:]
		}
	}
	return out
}
