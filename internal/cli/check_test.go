package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckGolden(t *testing.T) {
	dir := t.TempDir()
	badPolicy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(badPolicy, []byte("rules:\n  no-such-rule: {mode: warn}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"check-bad", []string{"check", "testdata/check/bad"}, 1},
		{"check-bad-json", []string{"check", "testdata/check/bad", "-o", "json"}, 1},
		{"check-bad-fail-on-critical", []string{"check", "testdata/check/bad", "--fail-on", "critical"}, 1},
		{"check-good", []string{"check", "testdata/check/good"}, 0},
		{"check-missing", []string{"check", filepath.Join(dir, "nope")}, 2},
		{"check-invalid-policy", []string{"check", "testdata/check/good", "--policy", badPolicy}, 2},
		{"check-bad-flag", []string{"check", "testdata/check/good", "--fail-on", "urgent"}, 2},
		{"audit-help", []string{"audit", "--help"}, 0},
		{"audit-cluster-no-sandbox", []string{"audit", "cluster", "--sandbox", "berth-golden-does-not-exist"}, 2},
	}
	t.Setenv("BERTH_STATE_DIR", dir)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(t, dir, c.args...)
			if code != c.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, c.code, errOut)
			}
			golden(t, c.name, fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", code, out, errOut))
		})
	}
}

func TestCheckSARIFAndSecrets(t *testing.T) {
	code, out, _ := run(t, "", "check", "testdata/check/bad", "-o", "sarif")
	if code != 1 {
		t.Fatalf("exit = %d, want 1", code)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Results []struct {
				RuleID string `json:"ruleId"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil || log.Version != "2.1.0" || len(log.Runs[0].Results) == 0 {
		t.Fatalf("SARIF = %v %+v", err, log)
	}
	for _, args := range [][]string{{"check", "testdata/check/bad"}, {"check", "testdata/check/bad", "-o", "json"}, {"check", "testdata/check/bad", "-o", "sarif"}} {
		_, out, errOut := run(t, "", args...)
		if strings.Contains(out+errOut, "correct-horse-battery-staple") {
			t.Errorf("%v prints the ConfigMap's password", args)
		}
	}
}
