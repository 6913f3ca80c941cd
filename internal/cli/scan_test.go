package cli

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/internal/scan/scantest"
	"github.com/berth-dev/berth/internal/vulndb/vulndbtest"
)

var (
	timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	ago       = regexp.MustCompile(`\(\d+[hms0-9.]* ago\)|\d+h\d+m\d+s ago|imported \d+s ago|imported [0-9hms.µn]+ ago`)
)

// scrub replaces times, which change from run to run, and the checkout's
// absolute path of the fixtures.
func scrub(s string) string {
	if abs, err := filepath.Abs(fixtures); err == nil {
		s = strings.ReplaceAll(s, abs, "$FIXTURES")
	}
	return ago.ReplaceAllString(timestamp.ReplaceAllString(s, "TIME"), "AGO")
}

const fixtures = "../scan/match/testdata/osv"

func TestScanGolden(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	img := scantest.Layout(t, scantest.DebianBase(t), scantest.Layer(t,
		scantest.File{Path: "app/node_modules/lodash/package.json", Data: []byte(`{"name":"lodash","version":"4.17.20"}`)},
		scantest.File{Path: "app/node_modules/evil-pkg/package.json", Data: []byte(`{"name":"evil-pkg","version":"1.0.1"}`)},
	))
	if err := os.Rename(img, filepath.Join(dir, "image")); err != nil {
		t.Fatal(err)
	}
	img = filepath.Join(dir, "image")
	ignore := filepath.Join(dir, "ignore.yaml")
	os.WriteFile(ignore, []byte(`ignores:
  - id: CVE-2099-0001
    reason: openssl is not reachable from the network in this image
    expires: 2999-12-31
  - id: TEST-DEB-0002
    reason: accepted last year
    expires: 2020-01-01
`), 0o644)
	badIgnore := filepath.Join(dir, "bad-ignore.yaml")
	os.WriteFile(badIgnore, []byte("ignores:\n  - id: TEST-DEB-0002\n    expires: 2999-01-01\n"), 0o644)
	common := []string{"--db", db, "--cache-dir", filepath.Join(dir, "cache"), "--secrets=false"}
	hostile := filepath.Join(dir, "all.zip")
	writeZip(t, hostile, map[string]string{
		"../../evil.json": `{"id":"EVIL-1"}`,
		"broken.json":     `{"id": "X", "affected": [`,
		"ok.json":         `{"id":"ZIP-1","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"versions":["1.0.0"]}]}`,
	})
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"scan-no-db", append([]string{"scan", img}, common...), 2},
		{"db-import", []string{"db", "import", fixtures, "--db", db}, 0},
		{"db-import-hostile-zip", []string{"db", "import", hostile, "--db", db}, 0},
		{"db-import-missing", []string{"db", "import", filepath.Join(dir, "missing.zip"), "--db", db}, 2},
		{"db-status", []string{"db", "status", "--db", db}, 0},
		{"db-status-stale", []string{"db", "status", "--db", db, "--max-db-age", "1ns"}, 1},
		{"scan-table", append([]string{"scan", img}, common...), 1},
		{"scan-ignore-file", append([]string{"scan", img, "--ignore-file", ignore, "--fail-on", "CRITICAL", "--ignore-unfixed"}, common...), 1},
		{"scan-critical-only", append([]string{"scan", img, "--fail-on", "critical"}, append(common[:2:2], "--no-cache", "--secrets=false")...), 1},
		{"scan-stale-db", append([]string{"scan", img, "--max-db-age", "1ns"}, common...), 2},
		{"scan-bad-ignore-file", append([]string{"scan", img, "--ignore-file", badIgnore}, common...), 2},
		{"scan-bad-fail-on", append([]string{"scan", img, "--fail-on", "SEVERE"}, common...), 2},
		{"scan-bad-format", append([]string{"scan", img, "-o", "xml"}, common...), 2},
		{"scan-bad-max-age", append([]string{"scan", img, "--max-db-age", "a week"}, common...), 2},
		{"scan-missing-image", append([]string{"scan", filepath.Join(dir, "nope")}, common...), 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(t, dir, c.args...)
			if code != c.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, c.code, errOut)
			}
			golden(t, c.name, scrub(fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", code, out, errOut)))
		})
	}
}

func writeZip(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	for _, name := range []string{"../../evil.json", "broken.json", "ok.json"} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(files[name]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestScanOutputsParse(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if code, _, errOut := run(t, dir, "db", "import", fixtures, "--db", db); code != 0 {
		t.Fatal(errOut)
	}
	img := scantest.Layout(t, scantest.DebianBase(t))
	for _, f := range []string{"json", "sarif", "cyclonedx", "cosign-vuln"} {
		code, out, errOut := run(t, "", "scan", img, "--db", db, "-o", f, "--no-cache", "--fail-on", "LOW")
		if code != 1 {
			t.Errorf("-o %s: exit %d: %s", f, code, errOut)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Errorf("-o %s: %v\n%s", f, err, out)
		}
		if !strings.Contains(out, "TEST-DEB-0001") {
			t.Errorf("-o %s lacks TEST-DEB-0001", f)
		}
	}
}

// TestScanRegistryImageWithRealGoAdvisories pushes an image holding a real Go
// binary built against golang.org/x/text v0.3.5 to an in-process registry
// and scans it against the real Go vulnerability database.
func TestScanRegistryImageWithRealGoAdvisories(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go binary")
	}
	dir := t.TempDir()
	db := vulndbtest.Store(t)
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	bin := scantest.GoBinary(t, map[string]string{"golang.org/x/text": "v0.3.5"}, scantest.TextMain)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, scantest.Layer(t, scantest.File{Path: "usr/local/bin/app", Data: data, Mode: 0o755}))
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(srv.URL, "http://") + "/team/app:1"
	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithContext(context.Background())); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, dir, "scan", ref, "--insecure", "--db", db, "--max-db-age", "0", "-o", "json", "--cache-dir", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errOut)
	}
	var r struct {
		Digest  string
		Verdict struct {
			Findings []struct {
				ID      string
				Fixed   []string
				Package struct{ Name, Path string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range r.Verdict.Findings {
		if f.Package.Path == "/usr/local/bin/app" {
			found[f.ID] = true
		}
	}
	for _, id := range []string{"GO-2021-0113", "GO-2022-1059"} {
		if !found[id] {
			t.Errorf("%s not found in %v", id, found)
		}
	}
	if !strings.HasPrefix(r.Digest, "sha256:") {
		t.Errorf("digest = %q", r.Digest)
	}
}
