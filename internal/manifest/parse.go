package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Parse splits data (a YAML stream or a JSON document) into objects. Empty
// documents are ignored; "List" kinds are flattened. Any document that is not
// a Kubernetes object (no apiVersion, kind or metadata.name) is an error
// naming file and line: a revision is taken whole or not at all.
func Parse(file string, data []byte) ([]Object, error) {
	// UTF-16 (a file saved by some Windows editors) would decode as one
	// document with the rest silently lost.
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) || bytes.IndexByte(data, 0) >= 0 {
		return nil, &Error{Source: Source{File: file, Line: 1}, Err: errors.New("not UTF-8 text (UTF-16, or NUL bytes): save the file as UTF-8")}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var out []Object
	for _, doc := range splitDocuments(data) {
		src := Source{File: file, Line: doc.line}
		body := bytes.TrimSpace(doc.body)
		if len(body) == 0 || isOnlyComments(body) {
			continue
		}
		if err := checkExpansion(body); err != nil {
			return nil, &Error{Source: src, Err: err}
		}
		var m map[string]any
		if err := yaml.Unmarshal(body, &m); err != nil {
			return nil, &Error{Source: Source{File: file, Line: doc.line + yamlErrLine(err)}, Err: fmt.Errorf("invalid YAML: %w", err)}
		}
		// The decoder above reads the first document only: one more in
		// the same piece (after "---" and a tab, or a "..." end marker)
		// would be dropped without a word, and pruned once applied.
		switch n, err := documents(body); {
		case n > 1:
			return nil, &Error{Source: src, Err: fmt.Errorf("holds %d YAML documents where one was expected: separate documents with a line holding only \"---\"", n)}
		case err != nil && n == 1:
			return nil, &Error{Source: src, Err: fmt.Errorf("content after the document cannot be read (after a \"...\" end marker?): %w", err)}
		}
		if m == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		// IsList says only that items is an array: a custom resource
		// may have one of its own.
		if u.IsList() && strings.HasSuffix(u.GetKind(), "List") {
			list, err := u.ToList()
			if err != nil {
				return nil, &Error{Source: src, Err: fmt.Errorf("invalid list: %w", err)}
			}
			for i := range list.Items {
				item := list.Items[i]
				if err := validateIdentity(&item); err != nil {
					return nil, &Error{Source: src, Err: fmt.Errorf("item %d: %w", i, err)}
				}
				out = append(out, Object{Object: &item, Source: src})
			}
			continue
		}
		if err := validateIdentity(u); err != nil {
			return nil, &Error{Source: src, Err: err}
		}
		out = append(out, Object{Object: u, Source: src})
	}
	return out, nil
}

func validateIdentity(u *unstructured.Unstructured) error {
	var missing []string
	if u.GetAPIVersion() == "" {
		missing = append(missing, "apiVersion")
	}
	if u.GetKind() == "" {
		missing = append(missing, "kind")
	}
	if u.GetName() == "" && u.GetGenerateName() == "" {
		missing = append(missing, "metadata.name")
	}
	if len(missing) > 0 {
		return fmt.Errorf("not a Kubernetes object: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// documents counts the non-empty YAML documents in b when it may hold
// more than one (1 when it cannot), and returns the error that stopped
// the count early: content after a first document that a stream reader
// cannot read.
func documents(b []byte) (int, error) {
	if !bytes.Contains(b, []byte("---")) && !bytes.Contains(b, []byte("...")) {
		return 1, nil
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(b))
	n := 0
	for {
		var node yamlv3.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if len(node.Content) > 0 && (node.Content[0].Kind != yamlv3.ScalarNode || node.Content[0].Tag != "!!null") {
			n++
		}
	}
}

type document struct {
	body []byte
	line int // 1-based line of the document's first line
}

// splitDocuments splits a YAML stream on "---" separator lines, keeping the
// line number each document starts at.
func splitDocuments(data []byte) []document {
	var docs []document
	lines := bytes.SplitAfter(data, []byte("\n"))
	start := 1
	var cur bytes.Buffer
	for i, l := range lines {
		trimmed := bytes.TrimRight(l, "\r\n")
		if bytes.Equal(trimmed, []byte("---")) {
			docs = append(docs, document{body: append([]byte(nil), cur.Bytes()...), line: start})
			cur.Reset()
			start = i + 2
			continue
		}
		if rest, ok := bytes.CutPrefix(trimmed, []byte("--- ")); ok {
			// "--- {...}" or "--- # comment": what follows the marker
			// opens the next document, on this line.
			docs = append(docs, document{body: append([]byte(nil), cur.Bytes()...), line: start})
			cur.Reset()
			start = i + 1
			cur.Write(rest)
			cur.WriteByte('\n')
			continue
		}
		cur.Write(l)
	}
	docs = append(docs, document{body: cur.Bytes(), line: start})
	// Report the first non-blank line of each document.
	for i := range docs {
		for _, l := range bytes.SplitAfter(docs[i].body, []byte("\n")) {
			if len(bytes.TrimSpace(l)) > 0 {
				break
			}
			docs[i].line++
		}
	}
	return docs
}

func isOnlyComments(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

// yamlErrLine extracts "line N" from a YAML error, as an offset (N-1) into
// the document; 0 when absent.
func yamlErrLine(err error) int {
	var n int
	msg := err.Error()
	for _, prefix := range []string{"yaml: line ", "line "} {
		if i := strings.Index(msg, prefix); i >= 0 {
			if _, e := fmt.Sscanf(msg[i+len(prefix):], "%d", &n); e == nil && n > 0 {
				return n - 1
			}
		}
	}
	return 0
}
