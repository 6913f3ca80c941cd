package secretscan

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
)

// MaxSize is the largest content Scan looks at; larger content is skipped.
const MaxSize = 1 << 20

// binarySniffLen is how much of the content IsBinary inspects.
const binarySniffLen = 8 << 10

// Finding is one secret found by a gitleaks rule. It never holds the secret.
type Finding struct {
	// RuleID is the gitleaks rule that matched, e.g. "aws-access-token".
	RuleID string `json:"ruleId"`
	// Description is the rule's human description.
	Description string `json:"description,omitempty"`
	// Line is the 1-based line of the match.
	Line int `json:"line"`
	// Redacted is the matched text with the secret masked.
	Redacted string `json:"redacted"`
}

var (
	once     sync.Once
	detector *detect.Detector
	initErr  error
)

// Init builds the shared detector if it is not built yet and reports whether
// that failed. Scan calls it; call it directly to surface the error early.
func Init() error {
	once.Do(func() {
		// gitleaks logs through a global zerolog logger, at debug level with
		// the secret itself: silence it.
		logging.Logger = zerolog.Nop()
		d, err := detect.NewDetectorDefaultConfig()
		if err != nil {
			initErr = fmt.Errorf("building gitleaks detector: %w", err)
			return
		}
		d.MaxDecodeDepth = 0
		detector = d
	})
	return initErr
}

// IsBinary reports whether content looks binary: a NUL byte in its first
// 8 KiB.
func IsBinary(content []byte) bool {
	return bytes.IndexByte(content[:min(len(content), binarySniffLen)], 0) >= 0
}

// Scan returns the secrets in content, read from path (used by path-based
// rules and allowlists; it may be empty). Binary content and content over
// MaxSize are skipped and give no findings, as does a detector that failed to
// build (see Init). Findings are sorted by line and rule and are safe to
// print: each holds a redacted match, never the secret. Scan is safe for
// concurrent use.
func Scan(path string, content []byte) []Finding {
	if len(content) == 0 || len(content) > MaxSize || IsBinary(content) {
		return nil
	}
	if Init() != nil {
		return nil
	}
	// detect.Fragment is deprecated for v9's sources.Fragment, but it is the
	// only way v8 takes the path its path rules and allowlists need.
	raw := detector.Detect(detect.Fragment{Raw: string(content), FilePath: path}) //nolint:staticcheck // see above
	out := make([]Finding, 0, len(raw))
	for _, f := range raw {
		out = append(out, Finding{
			RuleID:      f.RuleID,
			Description: f.Description,
			Line:        f.StartLine + 1,
			Redacted:    Redact(f.Match, f.Secret),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].RuleID < out[j].RuleID
	})
	return out
}

// Redact returns match with every occurrence of secret masked. It keeps at
// most the first four characters of a secret of 16 or more characters (a key
// prefix such as "AKIA" or "ghp_" tells a reader what leaked) and masks the
// rest; shorter secrets are masked whole. With an empty secret the whole
// match is masked.
func Redact(match, secret string) string {
	if secret == "" {
		secret = match
	}
	keep := 0
	if len(secret) >= 16 {
		keep = 4
	}
	masked := secret[:keep] + "****REDACTED****"
	out := strings.ReplaceAll(match, secret, masked)
	if strings.Contains(out, secret) || out == match {
		return masked
	}
	return out
}
