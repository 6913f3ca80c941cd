package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/internal/testenv"
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
		// testdata/check/bad stands for a repository of its own (--root):
		// its .berth/policy.yaml is then at the root.
		{"check-bad", []string{"check", "testdata/check/bad", "--root", "testdata/check/bad"}, 1},
		{"check-bad-json", []string{"check", "testdata/check/bad", "--root", "testdata/check/bad", "-o", "json"}, 1},
		{"check-bad-fail-on-critical", []string{"check", "testdata/check/bad", "--root", "testdata/check/bad", "--fail-on", "critical"}, 1},
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
	// The command's own output against the official schema (kept with the
	// policy package's testdata, see its README).
	schema := testenv.CompileSchema(t, "sarif.json", map[string]string{"sarif.json": "../policy/testdata/sarif-schema-2.1.0.json"})
	if err := testenv.ValidateJSON(schema, []byte(out)); err != nil {
		t.Errorf("berth check -o sarif is not valid SARIF 2.1.0: %v", err)
	}
	for _, args := range [][]string{{"check", "testdata/check/bad"}, {"check", "testdata/check/bad", "-o", "json"}, {"check", "testdata/check/bad", "-o", "sarif"}} {
		_, out, errOut := run(t, "", args...)
		if strings.Contains(out+errOut, "correct-horse-battery-staple") {
			t.Errorf("%v prints the ConfigMap's password", args)
		}
	}
}

func TestCheckResolve(t *testing.T) {
	reg := testenv.NewRegistry(t)
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(reg.Host + "/web:2.0")
	if err := remote.Write(tag, img, remote.WithContext(context.Background())); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".berth"), 0o755); err != nil {
		t.Fatal(err)
	}
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: web, image: \"" + reg.Host + "/web:2.0\"}\n"
	for name, content := range map[string]string{
		"pod.yaml":           pod,
		".berth/policy.yaml": "rules:\n  image-digest-required: {mode: enforce}\n  container-probes: {mode: \"off\"}\n  container-resources: {mode: \"off\"}\n  pod-security-restricted: {mode: \"off\"}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, _ := run(t, dir, "check", dir); code != 1 || !strings.Contains(out, "image-digest-required") {
		t.Errorf("without --resolve: exit %d, want 1 for the tag without digest:\n%s", code, out)
	}
	if code, out, errOut := run(t, dir, "check", dir, "--resolve"); code != 0 {
		t.Errorf("with --resolve: exit %d, want 0:\n%s%s", code, out, errOut)
	}
	reg.Close()
	if code, _, errOut := run(t, dir, "check", dir, "--resolve"); code != 2 || !strings.Contains(errOut, "registry unreachable") {
		t.Errorf("registry down: exit %d, want 2 naming the outage: %s", code, errOut)
	}
}

// A chart's hooks are not in Helm's manifest; Helm creates them itself.
// berth check (and the agent's gate) checks them with everything else.
func TestCheckChecksHelmHooks(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: hooked\nversion: 0.1.0\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
		"templates/migrate.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-upgrade\n" +
			"spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: example.test/migrate:latest\n",
	})
	code, out, errOut := run(t, "", "check", dir)
	if code != 1 {
		t.Errorf("exit = %d, want 1 (stderr %q)", code, errOut)
	}
	if !strings.Contains(out, "image-latest-tag") || !strings.Contains(out, "hooked/templates/migrate.yaml") || !strings.Contains(out, "batch/Job migrate") {
		t.Errorf("the hook's :latest image is not reported:\n%s", out)
	}
}

// berth check renders a chart with the values files an Application names.
func TestCheckHelmValuesFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Chart.yaml":         "apiVersion: v2\nname: valued\nversion: 0.1.0\n",
		"values.yaml":        "tag: \"1.0\"\n",
		"ci/latest.yaml":     "tag: latest\n",
		"templates/pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: example.test/web:{{ .Values.tag }}\n",
	})
	if _, out, _ := run(t, "", "check", dir); strings.Contains(out, "image-latest-tag") {
		t.Errorf("without --values: %s", out)
	}
	code, out, errOut := run(t, "", "check", dir, "--values", "ci/latest.yaml")
	if code != 1 || !strings.Contains(out, "image-latest-tag") {
		t.Errorf("with --values ci/latest.yaml: exit %d, stdout %s, stderr %s", code, out, errOut)
	}
	if code, _, errOut := run(t, "", "check", dir, "--values", "../../etc/passwd"); code != 2 || errOut == "" {
		t.Errorf("values file outside the chart: exit %d, stderr %q", code, errOut)
	}
}

// writeFiles writes files (slash-separated paths relative to dir).
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// berth check reads the policy the agent reads: the Git root's. A file
// deeper in the tree would loosen it (here: allow a latest tag) and is not
// read; a warning says so.
func TestCheckReadsTheRootPolicyOnly(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		".git/HEAD":                   "ref: refs/heads/main\n",
		".berth/policy.yaml":          "rules:\n  container-probes: {mode: \"off\"}\n  container-resources: {mode: \"off\"}\n  pod-security-restricted: {mode: \"off\"}\n",
		"apps/web/.berth/policy.yaml": "rules:\n  image-latest-tag: {mode: \"off\"}\n",
		"apps/web/pod.yaml":           "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: web, image: \"example.test/web:latest\"}\n",
	})
	code, out, errOut := run(t, "", "check", filepath.Join(dir, "apps/web"))
	if code != 1 || !strings.Contains(out, "image-latest-tag") {
		t.Errorf("exit %d, want 1 for the latest tag (the nested file is not read):\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, filepath.Join(dir, "apps/web/.berth/policy.yaml")+" is not read") {
		t.Errorf("stderr = %q, want a warning naming the file that is not read", errOut)
	}
}
