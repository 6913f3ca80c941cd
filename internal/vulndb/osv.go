package vulndb

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// osvEntry is the subset of the OSV schema (https://ossf.github.io/osv-schema/)
// that berth reads.
type osvEntry struct {
	SchemaVersion    string          `json:"schema_version"`
	ID               string          `json:"id"`
	Modified         time.Time       `json:"modified"`
	Published        time.Time       `json:"published"`
	Withdrawn        *time.Time      `json:"withdrawn"`
	Aliases          []string        `json:"aliases"`
	Summary          string          `json:"summary"`
	Details          string          `json:"details"`
	Severity         []Severity      `json:"severity"`
	Affected         []osvAffected   `json:"affected"`
	References       []Reference     `json:"references"`
	DatabaseSpecific json.RawMessage `json:"database_specific"`
}

type osvAffected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
		Purl      string `json:"purl"`
	} `json:"package"`
	Severity          []Severity      `json:"severity"`
	Ranges            []Range         `json:"ranges"`
	Versions          []string        `json:"versions"`
	EcosystemSpecific json.RawMessage `json:"ecosystem_specific"`
	DatabaseSpecific  json.RawMessage `json:"database_specific"`
}

// Severity is one OSV severity: Type is CVSS_V2, CVSS_V3, CVSS_V4 or Ubuntu,
// Score the vector (or the word for Ubuntu).
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// Reference is a link about the vulnerability.
type Reference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// Range is an OSV affected range: Type SEMVER, ECOSYSTEM or GIT, and its
// events in the order the record gives them.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one range event; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// errInvalidRecord marks a record that parses as JSON but breaks the schema.
var errInvalidRecord = errors.New("invalid OSV record")

// parseEntry decodes and checks one OSV record.
func parseEntry(data []byte) (*osvEntry, error) {
	var e osvEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("decoding OSV JSON: %w", err)
	}
	if err := e.validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

func (e *osvEntry) validate() error {
	if strings.TrimSpace(e.ID) == "" {
		return fmt.Errorf("%w: no id", errInvalidRecord)
	}
	if len(e.ID) > 256 {
		return fmt.Errorf("%w: id longer than 256 bytes", errInvalidRecord)
	}
	for i, a := range e.Affected {
		if a.Package.Ecosystem == "" && a.Package.Purl == "" {
			return fmt.Errorf("%w: %q: affected[%d] has no package ecosystem", errInvalidRecord, e.ID, i)
		}
		for j, r := range a.Ranges {
			switch r.Type {
			case "SEMVER", "ECOSYSTEM", "GIT":
			default:
				return fmt.Errorf("%w: %q: affected[%d].ranges[%d] has unknown type %q", errInvalidRecord, e.ID, i, j, r.Type)
			}
			for k, ev := range r.Events {
				n := 0
				for _, s := range []string{ev.Introduced, ev.Fixed, ev.LastAffected, ev.Limit} {
					if s != "" {
						n++
					}
				}
				if n != 1 {
					return fmt.Errorf("%w: %q: affected[%d].ranges[%d].events[%d] must set exactly one of introduced, fixed, last_affected, limit", errInvalidRecord, e.ID, i, j, k)
				}
			}
		}
	}
	return nil
}

// specificSeverity digs a severity word out of database_specific or
// ecosystem_specific: GHSA's "severity", Debian's "urgency", Ubuntu's
// "ubuntu_priority" ... Empty when there is none.
func specificSeverity(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	for _, k := range []string{"severity", "urgency", "ubuntu_priority", "priority"} {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// summary is the record's summary, or the first line of its details.
func (e *osvEntry) summary() string {
	s := e.Summary
	if s == "" {
		s, _, _ = strings.Cut(strings.TrimSpace(e.Details), "\n")
	}
	if len(s) > 300 {
		s = s[:297] + "..."
	}
	return s
}
