package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	yamlv3 "go.yaml.in/yaml/v3"
)

// minExpansionLimit is the least a document's aliases may expand to; more
// than that is allowed up to expansionFactor times the document's size.
const (
	minExpansionLimit = 16 << 20
	expansionFactor   = 10
)

// checkExpansion refuses a YAML document whose aliases expand it past
// max(expansionFactor × its size, minExpansionLimit) bytes of scalars. The
// decoder's own guard counts aliases against nodes, so one large string
// named a thousand times passes it, and costs nothing until the document
// is converted to JSON, where every copy is written out: gigabytes from a
// file of a few megabytes, in the agent's own process.
func checkExpansion(body []byte) error {
	if !bytes.ContainsRune(body, '*') {
		return nil // no alias
	}
	limit := max(int64(len(body))*expansionFactor, minExpansionLimit)
	dec := yamlv3.NewDecoder(bytes.NewReader(body))
	for {
		var doc yamlv3.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil // the parse that follows reports it, with its line
		}
		sizes := map[*yamlv3.Node]int64{}
		if n := expandedSize(&doc, sizes, limit); n > limit {
			return fmt.Errorf("its YAML aliases expand it to more than %d MiB (the file has %d KiB): refused, as an alias bomb would be; write the values out, or use fewer aliases of large values",
				limit>>20, len(body)>>10)
		}
	}
}

// expandedSize is the bytes of scalars node stands for once its aliases
// are expanded; it stops counting past limit. sizes memoizes each node.
func expandedSize(node *yamlv3.Node, sizes map[*yamlv3.Node]int64, limit int64) int64 {
	if n, ok := sizes[node]; ok {
		return n
	}
	sizes[node] = limit + 1 // an alias cycle counts as too much
	var n int64
	switch node.Kind {
	case yamlv3.AliasNode:
		if node.Alias != nil {
			n = expandedSize(node.Alias, sizes, limit)
		}
	case yamlv3.ScalarNode:
		n = int64(len(node.Value)) + 1
	default:
		n = 1
		for _, c := range node.Content {
			n += expandedSize(c, sizes, limit)
			if n > limit {
				break
			}
		}
	}
	sizes[node] = n
	return n
}
