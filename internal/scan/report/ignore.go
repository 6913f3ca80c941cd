package report

import (
	"fmt"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/internal/scan/match"
)

// IgnoreRule is one entry of an ignore file: an advisory (by ID or alias)
// accepted for a reason until an expiry date, optionally only for one
// package or one file in the image.
type IgnoreRule struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
	// Expires is the last day (UTC) the rule applies, "2027-01-31".
	Expires string `json:"expires"`
	Package string `json:"package,omitempty"`
	Path    string `json:"path,omitempty"`

	until time.Time
}

// ignoreFile is the YAML document.
type ignoreFile struct {
	Ignores []IgnoreRule `json:"ignores"`
}

// LoadIgnoreFile reads and checks an ignore file. Every entry needs id,
// reason and expires.
func LoadIgnoreFile(path string) ([]IgnoreRule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading ignore file: %w", err)
	}
	return ParseIgnoreFile(data, path)
}

// ParseIgnoreFile parses an ignore file's content; name is used in errors.
func ParseIgnoreFile(data []byte, name string) ([]IgnoreRule, error) {
	var f ignoreFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("parsing ignore file %s: %w", name, err)
	}
	for i := range f.Ignores {
		r := &f.Ignores[i]
		var missing []string
		if strings.TrimSpace(r.ID) == "" {
			missing = append(missing, "id")
		}
		if strings.TrimSpace(r.Reason) == "" {
			missing = append(missing, "reason")
		}
		if strings.TrimSpace(r.Expires) == "" {
			missing = append(missing, "expires")
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("ignore file %s: entry %d (%s) lacks %s", name, i+1, r.ID, strings.Join(missing, ", "))
		}
		day, err := time.Parse(time.DateOnly, r.Expires)
		if err != nil {
			return nil, fmt.Errorf("ignore file %s: entry %d (%s): expires %q is not a date like 2027-01-31", name, i+1, r.ID, r.Expires)
		}
		r.until = day.Add(24 * time.Hour)
	}
	return f.Ignores, nil
}

// expired reports whether the rule no longer applies at now.
func (r *IgnoreRule) expired(now time.Time) bool {
	if r.until.IsZero() {
		if day, err := time.Parse(time.DateOnly, r.Expires); err == nil {
			r.until = day.Add(24 * time.Hour)
		}
	}
	return !now.Before(r.until)
}

// covers reports whether the rule names the finding.
func (r *IgnoreRule) covers(f *match.Finding) bool {
	if r.Package != "" && r.Package != f.Package.Name && r.Package != f.Package.SourceName {
		return false
	}
	if r.Path != "" && r.Path != f.Package.Path {
		return false
	}
	if strings.EqualFold(r.ID, f.ID) {
		return true
	}
	for _, a := range f.Aliases {
		if strings.EqualFold(r.ID, a) {
			return true
		}
	}
	return false
}
