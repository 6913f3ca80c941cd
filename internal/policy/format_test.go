package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/berth-dev/berth/internal/testenv"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/manifest"
)

// corpusReport evaluates the whole bad corpus, so every rule family shows.
func corpusReport(t *testing.T) *Report {
	t.Helper()
	files, _ := filepath.Glob("testdata/rules/*/bad*.yaml")
	var objs []manifest.Object
	for _, f := range files {
		objs = append(objs, parseFile(t, f)...)
	}
	rep, err := Evaluate(context.Background(), objs, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Blocked() || len(rep.Warnings()) == 0 {
		t.Fatalf("corpus report has no enforce or no warn violations: %d/%d", len(rep.Enforced()), len(rep.Warnings()))
	}
	return rep
}

func TestSARIFValidatesAgainstSchema(t *testing.T) {
	schema := testenv.CompileSchema(t, "sarif.json", map[string]string{"sarif.json": "testdata/sarif-schema-2.1.0.json"})
	validate := func(t *testing.T, b []byte) {
		t.Helper()
		if err := testenv.ValidateJSON(schema, b); err != nil {
			t.Fatalf("SARIF output is invalid: %v", err)
		}
	}
	t.Run("violations", func(t *testing.T) {
		var buf bytes.Buffer
		if err := corpusReport(t).WriteSARIF(&buf, "v0.0.0-test"); err != nil {
			t.Fatal(err)
		}
		validate(t, buf.Bytes())
		var log struct {
			Runs []struct {
				Results []struct {
					RuleID    string `json:"ruleId"`
					Level     string `json:"level"`
					Locations []struct {
						PhysicalLocation struct {
							Region struct{ StartLine int } `json:"region"`
						} `json:"physicalLocation"`
					} `json:"locations"`
				} `json:"results"`
			} `json:"runs"`
		}
		if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
			t.Fatal(err)
		}
		levels := map[string]bool{}
		for _, r := range log.Runs[0].Results {
			levels[r.Level] = true
			if r.RuleID == "" || r.Locations[0].PhysicalLocation.Region.StartLine < 1 {
				t.Errorf("result without rule or line: %+v", r)
			}
		}
		if !levels["error"] || !levels["warning"] {
			t.Errorf("levels = %v, want error and warning", levels)
		}
	})
	t.Run("empty", func(t *testing.T) {
		var buf bytes.Buffer
		if err := (&Report{}).WriteSARIF(&buf, ""); err != nil {
			t.Fatal(err)
		}
		validate(t, buf.Bytes())
	})
	t.Run("schema rejects a broken log", func(t *testing.T) {
		if testenv.ValidateJSON(schema, []byte(`{"version":"2.1.0","runs":[{"results":[]}]}`)) == nil {
			t.Fatal("a run without tool validated: the schema check proves nothing")
		}
	})
}

func TestWriteTextNeverPrintsSecrets(t *testing.T) {
	var buf bytes.Buffer
	if err := corpusReport(t).WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2hunt", "sk_live_0123456789abcdef", "s3cr3t-value", "AKIAZ3MPLE7QXRTV4NWB", "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("output contains secret %q", secret)
		}
	}
	if !strings.Contains(buf.String(), "fix: ") || !strings.Contains(buf.String(), "bad-keys.yaml:1") {
		t.Errorf("output lacks fix or file:line:\n%s", buf.String())
	}
}
