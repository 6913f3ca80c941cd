package match_test

import (
	"context"
	"testing"

	"github.com/berth-dev/berth/internal/scan/catalog"
	"github.com/berth-dev/berth/internal/scan/match"
	"github.com/berth-dev/berth/internal/vulndb"
)

type oneAdvisory vulndb.Advisory

func (a *oneAdvisory) Lookup(string, string) ([]vulndb.Advisory, error) {
	return []vulndb.Advisory{vulndb.Advisory(*a)}, nil
}

// FuzzMatch checks that hostile versions and range events (from an image or
// a record) end in a finding, no finding or a warning, never a panic.
func FuzzMatch(f *testing.F) {
	for _, eco := range []string{"Go", "Debian:12", "Alpine:v3.20", "npm", "PyPI", "Maven", "Red Hat", "RubyGems", "NuGet", "Packagist", "crates.io", "Hex", "CRAN", "Unknown"} {
		f.Add(eco, "1.2.3", "0", "1.2.4", "", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
	}
	f.Add("Debian:12", "1:2.3-4~deb12u1", "1:2.0", "", "1:2.3-4", "CVSS:4.0/AV:N")
	f.Add("PyPI", "3.0.0rc1", "3.0.0a1", "3.1.4", "", "AV:N/AC:L/Au:N/C:P/I:P/A:P")
	f.Add("Maven", "1.0-SNAPSHOT", "", "", "", "")
	f.Fuzz(func(t *testing.T, eco, version, introduced, fixed, lastAffected, vector string) {
		adv := &oneAdvisory{
			ID:       "FUZZ-1",
			Severity: []vulndb.Severity{{Type: "CVSS_V3", Score: vector}, {Type: "CVSS_V4", Score: vector}, {Type: "CVSS_V2", Score: vector}},
			Affected: []vulndb.Affected{{
				Ecosystem: eco,
				Ranges: []vulndb.Range{{Type: "ECOSYSTEM", Events: []vulndb.Event{
					{Introduced: introduced}, {Fixed: fixed}, {LastAffected: lastAffected}, {Limit: fixed},
				}}},
				Versions: []string{version},
			}},
		}
		pkgs := []catalog.Package{{Name: "p", Version: version, Ecosystem: eco}}
		if _, err := match.Match(context.Background(), adv, pkgs); err != nil {
			t.Fatal(err)
		}
		_, _ = match.BaseScore(vector)
	})
}
