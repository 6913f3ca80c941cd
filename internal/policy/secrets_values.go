package policy

import (
	"fmt"
	"strings"

	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/secretscan"
)

// valueFindings runs the shared gitleaks detector (internal/secretscan) over
// a ConfigMap's data, one "key: value" entry per key, and maps each finding
// back to its key. Findings hold only gitleaks' redacted match.
func valueFindings(obj *manifest.Object, keys []string, data map[string]string) []keyFinding {
	if len(keys) == 0 {
		return nil
	}
	var b strings.Builder
	type span struct {
		key        string
		start, end int // 1-based, inclusive
	}
	spans := make([]span, 0, len(keys))
	line := 1
	for _, k := range keys {
		v := data[k]
		n := strings.Count(v, "\n")
		spans = append(spans, span{key: k, start: line, end: line + n})
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteString("\n")
		line += n + 1
	}
	var out []keyFinding
	for _, f := range secretscan.Scan(obj.Source.File, []byte(b.String())) {
		for _, s := range spans {
			if f.Line >= s.start && f.Line <= s.end {
				out = append(out, keyFinding{key: s.key, message: fmt.Sprintf("key %q holds what gitleaks rule %s recognises as a credential (%s)", s.key, f.RuleID, f.Redacted)})
				break
			}
		}
	}
	return out
}
