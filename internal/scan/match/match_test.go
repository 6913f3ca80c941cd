package match_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-dev/berth/internal/scan/catalog"
	"github.com/berth-dev/berth/internal/scan/match"
	"github.com/berth-dev/berth/internal/vulndb"
)

var (
	fixtureOnce sync.Once
	fixtureDB   *vulndb.DB
	fixtureErr  error
)

// fixtures is a store imported from the hand-written records in testdata/osv.
func fixtures(t *testing.T) *vulndb.DB {
	t.Helper()
	fixtureOnce.Do(func() {
		dir := filepath.Join(t.TempDir(), "db")
		if _, fixtureErr = vulndb.Import(context.Background(), dir, "testdata/osv", vulndb.ImportOptions{}); fixtureErr != nil {
			return
		}
		fixtureDB, fixtureErr = vulndb.Open(dir)
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureDB
}

type got struct {
	ID       string
	Fixed    string
	Severity string
	Source   string
}

func TestMatchFixtures(t *testing.T) {
	db := fixtures(t)
	cases := []struct {
		name string
		pkg  catalog.Package
		want []got
	}{
		{"debian binary package matched by source, vulnerable",
			catalog.Package{Name: "libssl3", Version: "3.0.14-1~deb12u1", SourceName: "openssl", Ecosystem: "Debian:12"},
			[]got{{"TEST-DEB-0001", "3.0.15-1~deb12u1", "MEDIUM", "ecosystem"}}},
		{"debian source version decides, fixed",
			catalog.Package{Name: "libssl3", Version: "3.0.14-1~deb12u1", SourceName: "openssl", SourceVersion: "3.0.15-1~deb12u1", Ecosystem: "Debian:12"},
			nil},
		{"debian epoch and tilde ordering: ~deb12u1 sorts before the release",
			catalog.Package{Name: "openssl", Version: "3.0.15-1~deb12u0", Ecosystem: "Debian:12"},
			[]got{{"TEST-DEB-0001", "3.0.15-1~deb12u1", "MEDIUM", "ecosystem"}}},
		{"other debian release uses its own range",
			catalog.Package{Name: "openssl", Version: "1.1.1w-0+deb11u2", Ecosystem: "Debian:11"},
			nil},
		{"debian 11 vulnerable, no ecosystem severity there: cvss computed",
			catalog.Package{Name: "openssl", Version: "1.1.1w-0+deb11u1", Ecosystem: "Debian:11"},
			[]got{{"TEST-DEB-0001", "1.1.1w-0+deb11u2", "CRITICAL", "cvss"}}},
		{"debian 13 not named by the advisory",
			catalog.Package{Name: "openssl", Version: "1.0", Ecosystem: "Debian:13"},
			nil},
		{"unfixed",
			catalog.Package{Name: "libc6", SourceName: "glibc", Version: "2.36-9+deb12u9", Ecosystem: "Debian:12"},
			[]got{{"TEST-DEB-0002", "", "MEDIUM", "cvss"}}},
		{"alpine, cvss v4",
			catalog.Package{Name: "busybox", Version: "1.36.1-r28", Ecosystem: "Alpine:v3.20"},
			[]got{{"TEST-ALP-0001", "1.36.1-r29", "CRITICAL", "cvss"}}},
		{"alpine fixed",
			catalog.Package{Name: "busybox", Version: "1.36.1-r29", Ecosystem: "Alpine:v3.20"},
			nil},
		{"npm last_affected inclusive, GHSA severity preferred",
			catalog.Package{Name: "lodash", Version: "4.17.20", Ecosystem: "npm"},
			[]got{{"TEST-NPM-0001", "", "HIGH", "ecosystem"}}},
		{"npm above last_affected",
			catalog.Package{Name: "lodash", Version: "4.17.21", Ecosystem: "npm"},
			nil},
		{"npm below introduced",
			catalog.Package{Name: "lodash", Version: "3.10.1", Ecosystem: "npm"},
			nil},
		{"malicious package is critical whatever its score",
			catalog.Package{Name: "evil-pkg", Version: "1.0.1", Ecosystem: "npm"},
			[]got{{"MAL-2099-0001", "", "CRITICAL", "malicious"}}},
		{"malicious package, unlisted version",
			catalog.Package{Name: "evil-pkg", Version: "1.0.2", Ecosystem: "npm"},
			nil},
		{"pypi name normalized, second range, cvss v2",
			catalog.Package{Name: "jinja2", Version: "3.1.3", Ecosystem: "PyPI"},
			[]got{{"TEST-PYPI-0001", "3.1.4", "HIGH", "cvss"}}},
		{"pypi between ranges",
			catalog.Package{Name: "Jinja2", Version: "2.11.3", Ecosystem: "PyPI"},
			nil},
		{"pypi pre-release inside the second range",
			catalog.Package{Name: "Jinja2", Version: "3.0.0rc1", Ecosystem: "PyPI"},
			[]got{{"TEST-PYPI-0001", "3.1.4", "HIGH", "cvss"}}},
		{"ubuntu priority preferred over cvss, release prefix",
			catalog.Package{Name: "curl", Version: "7.81.0-1ubuntu1.15", Ecosystem: "Ubuntu:22.04"},
			[]got{{"TEST-UBU-0001", "7.81.0-1ubuntu1.16", "LOW", "ecosystem"}}},
		{"aliases folded: the rated GHSA record keeps the PYSEC one as an alias",
			catalog.Package{Name: "requests", Version: "2.31.0", Ecosystem: "PyPI"},
			[]got{{"TEST-GHSA-0001", "2.31.1,2.32.0", "MEDIUM", "ecosystem"}}},
		{"maven inside limit",
			catalog.Package{Name: "org.example:lib", Version: "2.3", Ecosystem: "Maven"},
			[]got{{"TEST-MVN-0001", "", "UNKNOWN", ""}}},
		{"maven past limit (2.6 < 2.10 by Maven rules)",
			catalog.Package{Name: "org.example:lib", Version: "2.6", Ecosystem: "Maven"},
			nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := match.Match(context.Background(), db, []catalog.Package{c.pkg})
			if err != nil {
				t.Fatal(err)
			}
			var gs []got
			for _, f := range res.Findings {
				gs = append(gs, got{f.ID, strings.Join(f.Fixed, ","), f.Rating.Severity.String(), f.Rating.Source})
			}
			if diff := cmp.Diff(c.want, gs); diff != "" {
				t.Errorf("findings (-want +got):\n%s\nwarnings %v", diff, res.Warnings)
			}
		})
	}
}

func TestBaseScore(t *testing.T) {
	cases := []struct {
		vector string
		score  float64
		sev    match.Severity
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, match.Critical},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H", 6.5, match.Medium},
		{"CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5, match.Medium},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3, match.Critical},
		{"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:L/I:N/A:N", 3.7, match.Low},
		{"AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5, match.High},
	}
	for _, c := range cases {
		s, err := match.BaseScore(c.vector)
		if err != nil || s != c.score {
			t.Errorf("BaseScore(%s) = %v, %v; want %v", c.vector, s, err, c.score)
		}
		if !strings.HasPrefix(c.vector, "AV:") && match.FromScore(s) != c.sev {
			t.Errorf("FromScore(%v) = %v, want %v", s, match.FromScore(s), c.sev)
		}
	}
	if _, err := match.BaseScore("CVSS:3.1/AV:X"); err == nil {
		t.Error("bad vector accepted")
	}
}

func TestParseSeverity(t *testing.T) {
	for in, want := range map[string]match.Severity{"low": match.Low, "HIGH": match.High, "Critical": match.Critical, "medium": match.Medium} {
		if got, err := match.ParseSeverity(in); err != nil || got != want {
			t.Errorf("ParseSeverity(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := match.ParseSeverity("severe"); err == nil {
		t.Error("ParseSeverity(severe) succeeded")
	}
}

func scantestPackages(goVersion string) []catalog.Package {
	return []catalog.Package{{Name: "stdlib", Version: goVersion, Ecosystem: "Go", Path: "/app"}}
}
