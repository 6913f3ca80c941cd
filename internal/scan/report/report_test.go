package report_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"github.com/berth-dev/berth/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/berth-dev/berth/internal/scan/catalog"
	"github.com/berth-dev/berth/internal/scan/match"
	"github.com/berth-dev/berth/internal/scan/report"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

var now = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func pkg(name, version, path string) catalog.Package {
	return catalog.Package{Name: name, Version: version, Ecosystem: "Go", Path: path, Cataloger: "gobinary",
		Layer: "sha256:1111111111111111111111111111111111111111111111111111111111111111", PURL: "pkg:golang/" + name + "@" + version}
}

func findings() []match.Finding {
	return []match.Finding{
		{ID: "GO-2022-1059", Aliases: []string{"CVE-2022-32149", "GHSA-69ch-w2m2-3vjp"}, Summary: "Denial of service via crafted Accept-Language header in golang.org/x/text/language",
			Package: pkg("golang.org/x/text", "v0.3.5", "/app/server"), Fixed: []string{"0.3.8"}, URL: "https://pkg.go.dev/vuln/GO-2022-1059"},
		{ID: "TEST-DEB-0001", Aliases: []string{"CVE-2099-0001"}, Summary: "synthetic openssl issue",
			Package: catalog.Package{Name: "libssl3", SourceName: "openssl", Version: "3.0.14-1~deb12u1", Ecosystem: "Debian:12", Path: "/var/lib/dpkg/status", PURL: "pkg:deb/debian/libssl3@3.0.14-1~deb12u1"},
			Fixed:   []string{"3.0.15-1~deb12u1"}, Rating: match.Rating{Severity: match.Critical, Score: 9.8, Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Source: "cvss"}},
		{ID: "TEST-DEB-0002", Summary: "synthetic glibc issue without a fix",
			Package: catalog.Package{Name: "libc6", SourceName: "glibc", Version: "2.36-9", Ecosystem: "Debian:12", Path: "/var/lib/dpkg/status"},
			Rating:  match.Rating{Severity: match.Medium, Score: 5.5, Vector: "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", Source: "cvss"}},
		{ID: "MAL-2099-0001", Summary: "synthetic malicious package", Malicious: true,
			Package: catalog.Package{Name: "evil-pkg", Version: "1.0.1", Ecosystem: "npm", Path: "/app/node_modules/evil-pkg/package.json"},
			Rating:  match.Rating{Severity: match.Critical, Source: "malicious"}},
		{ID: "TEST-NPM-0001", Summary: "synthetic low issue",
			Package: catalog.Package{Name: "lodash", Version: "4.17.20", Ecosystem: "npm", Path: "/app/node_modules/lodash/package.json"},
			Fixed:   []string{"4.17.21"}, Rating: match.Rating{Severity: match.Low, Score: 3.7, Vector: "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:L/I:N/A:N", Source: "cvss"}},
	}
}

func ids(fs []match.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	rules, err := report.ParseIgnoreFile([]byte(`
ignores:
  - id: CVE-2022-32149
    reason: only trusted Accept-Language values reach language.Parse
    expires: 2026-12-31
    package: golang.org/x/text
  - id: TEST-NPM-0001
    reason: was accepted last year
    expires: 2026-11-19
  - id: TEST-DEB-0001
    reason: wrong path, must not apply
    expires: 2027-01-01
    path: /somewhere/else
`), "ignore.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		policy      report.Policy
		wantIDs     []string
		wantFailing int
		wantIgnored []string
		wantExpired []string
		wantUnfixed int
	}{
		{"high threshold, unknown fails", report.Policy{FailOn: match.High, FailOnUnknown: true},
			[]string{"MAL-2099-0001", "TEST-DEB-0001", "TEST-DEB-0002", "TEST-NPM-0001", "GO-2022-1059"}, 3, nil, nil, 0},
		{"critical threshold, unknown passes", report.Policy{FailOn: match.Critical},
			[]string{"MAL-2099-0001", "TEST-DEB-0001", "TEST-DEB-0002", "TEST-NPM-0001", "GO-2022-1059"}, 2, nil, nil, 0},
		{"low threshold", report.Policy{FailOn: match.Low},
			[]string{"MAL-2099-0001", "TEST-DEB-0001", "TEST-DEB-0002", "TEST-NPM-0001", "GO-2022-1059"}, 4, nil, nil, 0},
		{"ignore unfixed keeps malicious", report.Policy{FailOn: match.Medium, IgnoreUnfixed: true},
			[]string{"MAL-2099-0001", "TEST-DEB-0001", "TEST-NPM-0001", "GO-2022-1059"}, 2, nil, nil, 1},
		{"ignore file: alias match, expired rule reported and not applied, path mismatch", report.Policy{FailOn: match.Low, FailOnUnknown: true, Ignores: rules},
			[]string{"MAL-2099-0001", "TEST-DEB-0001", "TEST-DEB-0002", "TEST-NPM-0001"}, 4, []string{"GO-2022-1059"}, []string{"TEST-NPM-0001"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := report.Evaluate(findings(), c.policy, now)
			if diff := cmp.Diff(c.wantIDs, ids(v.Findings)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			if v.Failing != c.wantFailing || v.Pass() != (c.wantFailing == 0) {
				t.Errorf("failing = %d, want %d", v.Failing, c.wantFailing)
			}
			var ign, exp []string
			for _, i := range v.Ignored {
				ign = append(ign, i.Finding.ID)
			}
			for _, e := range v.Expired {
				exp = append(exp, e.ID)
			}
			if diff := cmp.Diff(c.wantIgnored, ign); diff != "" {
				t.Errorf("ignored (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.wantExpired, exp); diff != "" {
				t.Errorf("expired (-want +got):\n%s", diff)
			}
			if v.Unfixed != c.wantUnfixed {
				t.Errorf("unfixed = %d, want %d", v.Unfixed, c.wantUnfixed)
			}
		})
	}
}

func TestIgnoreFileNeedsReasonAndExpiry(t *testing.T) {
	cases := map[string]string{
		"ignores:\n  - id: X\n    expires: 2027-01-01\n":                              "lacks reason",
		"ignores:\n  - id: X\n    reason: r\n":                                        "lacks expires",
		"ignores:\n  - reason: r\n    expires: 2027-01-01\n":                          "lacks id",
		"ignores:\n  - id: X\n    reason: r\n    expires: next week\n":                "not a date",
		"ignores:\n  - id: X\n    reason: r\n    expires: 2027-01-01\n    bogus: 1\n": "bogus",
	}
	for in, want := range cases {
		_, err := report.ParseIgnoreFile([]byte(in), "f.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}

func sample() *report.Report {
	fs := findings()
	pkgs := []catalog.Package{}
	for _, f := range fs {
		pkgs = append(pkgs, f.Package)
	}
	pkgs = append(pkgs, pkg("golang.org/x/net", "v0.40.0", "/app/server"))
	rules, _ := report.ParseIgnoreFile([]byte("ignores:\n  - id: TEST-NPM-0001\n    reason: old\n    expires: 2026-01-01\n"), "x")
	p := report.Policy{FailOn: match.High, FailOnUnknown: true, Ignores: rules}
	return &report.Report{
		ToolVersion: "v0.1.0-test",
		Image:       "registry.test/app:1",
		Digest:      "sha256:2222222222222222222222222222222222222222222222222222222222222222",
		OS:          &catalog.OS{ID: "debian", Name: "Debian GNU/Linux", VersionID: "12"},
		Packages:    pkgs,
		DB:          report.DBInfo{Dir: "/db", UpdatedAt: now.Add(-time.Hour), Advisories: 4800, Sources: []string{"/data/osv"}},
		Policy:      p,
		Verdict:     report.Evaluate(fs, p, now),
		StartedAt:   now,
		FinishedAt:  now.Add(time.Second),
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func render(t *testing.T, f report.Format) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := report.Write(&b, sample(), f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestTableGolden(t *testing.T) {
	golden(t, "table", render(t, report.FormatTable))
}

func TestJSONGolden(t *testing.T) {
	golden(t, "report.json", render(t, report.FormatJSON))
}

func compile(t *testing.T, main string, files map[string]string) *jsonschema.Schema {
	t.Helper()
	paths := map[string]string{}
	for url, f := range files {
		paths[url] = filepath.Join("testdata", f)
	}
	return testenv.CompileSchema(t, main, paths)
}

func validate(t *testing.T, s *jsonschema.Schema, data []byte) {
	t.Helper()
	if err := testenv.ValidateJSON(s, data); err != nil {
		t.Errorf("output does not validate: %v\n%s", err, data)
	}
}

func TestSARIFValidatesAgainstSchema(t *testing.T) {
	s := compile(t, "sarif.json", map[string]string{"sarif.json": "sarif-2.1.0-rtm.5.json"})
	out := render(t, report.FormatSARIF)
	validate(t, s, out)
	var log struct {
		Version string
		Runs    []struct {
			Tool struct {
				Driver struct{ Rules []struct{ ID string } }
			}
			Results []struct {
				RuleID, Level string
			}
		}
	}
	if err := json.Unmarshal(out, &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) != 5 || len(log.Runs[0].Tool.Driver.Rules) != 5 {
		t.Fatalf("unexpected SARIF: %s", out)
	}
	levels := map[string]string{}
	for _, r := range log.Runs[0].Results {
		levels[r.RuleID] = r.Level
	}
	want := map[string]string{"MAL-2099-0001": "error", "TEST-DEB-0001": "error", "GO-2022-1059": "error", "TEST-DEB-0002": "warning", "TEST-NPM-0001": "note"}
	if diff := cmp.Diff(want, levels); diff != "" {
		t.Errorf("levels (-want +got):\n%s", diff)
	}
	// A broken document must fail, or the check proves nothing.
	bad := bytes.Replace(out, []byte(`"level": "error"`), []byte(`"level": "fatal"`), 1)
	if testenv.ValidateJSON(s, bad) == nil {
		t.Error("schema accepted an invalid level")
	}
}

func TestCycloneDXValidatesAgainstSchema(t *testing.T) {
	s := compile(t, "http://cyclonedx.org/schema/bom-1.5.schema.json", map[string]string{
		"http://cyclonedx.org/schema/bom-1.5.schema.json":  "bom-1.5.schema.json",
		"http://cyclonedx.org/schema/spdx.schema.json":     "spdx.schema.json",
		"http://cyclonedx.org/schema/jsf-0.82.schema.json": "jsf-0.82.schemax.json",
	})
	out := render(t, report.FormatCycloneDX)
	validate(t, s, out)
	var bom struct {
		BOMFormat, SpecVersion string
		Components             []struct{ Name string }
		Vulnerabilities        []struct {
			ID      string
			Affects []struct{ Ref string }
			Ratings []struct{ Severity string }
		}
	}
	if err := json.Unmarshal(out, &bom); err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion != "1.5" || len(bom.Components) != 6 || len(bom.Vulnerabilities) != 5 {
		t.Errorf("unexpected BOM: %s", out)
	}
}

func TestCosignVulnPredicate(t *testing.T) {
	out := render(t, report.FormatCosignVuln)
	var p struct {
		Invocation map[string]any
		Scanner    struct {
			URI, Version string
			DB           struct{ URI, Version string }
			Result       struct {
				Verdict struct{ Failing int }
			}
		}
		Metadata struct{ ScanStartedOn, ScanFinishedOn time.Time }
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"parameters", "uri", "event_id", "builder.id"} {
		if _, ok := p.Invocation[k]; !ok {
			t.Errorf("invocation lacks %q", k)
		}
	}
	if p.Scanner.URI == "" || p.Scanner.DB.Version == "" || p.Scanner.Result.Verdict.Failing != 3 ||
		!p.Metadata.ScanStartedOn.Equal(now) || !p.Metadata.ScanFinishedOn.After(now) {
		t.Errorf("predicate = %s", out)
	}
}

func TestUnknownFormat(t *testing.T) {
	if err := report.Write(&bytes.Buffer{}, sample(), "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestTableNeutralisesControlCharacters(t *testing.T) {
	r := sample()
	r.Verdict.Findings[0].Summary = "evil \x1b]0;pwned\x07 summary"
	r.Verdict.Findings[0].Package.Name = "pkg\x1b[31m"
	var b bytes.Buffer
	if err := report.WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(b.String(), "\x1b\x07") {
		t.Errorf("control characters reach the terminal:\n%q", b.String())
	}
}
