package match_test

import (
	"context"
	"testing"

	"github.com/berth-dev/berth/internal/scan/catalog"
	"github.com/berth-dev/berth/internal/scan/match"
	"github.com/berth-dev/berth/internal/scan/scantest"
	"github.com/berth-dev/berth/internal/vulndb"
	"github.com/berth-dev/berth/internal/vulndb/vulndbtest"
)

// TestMatchRealGoBinaries compiles programs against golang.org/x/text
// v0.3.5 (affected by GO-2021-0113, fixed in v0.3.7, and GO-2022-1059, fixed
// in v0.3.8) and v0.3.8, reads their build information and matches it
// against the real Go vulnerability database.
func TestMatchRealGoBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Go binaries")
	}
	db, err := vulndb.Open(vulndbtest.Store(t))
	if err != nil {
		t.Fatal(err)
	}
	ids := func(version string) map[string]match.Finding {
		bin := scantest.GoBinary(t, map[string]string{"golang.org/x/text": version}, scantest.TextMain)
		res, err := match.Match(context.Background(), db, scantest.GoPackages(t, bin, "/app"))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]match.Finding{}
		for _, f := range res.Findings {
			if f.Package.Name == "golang.org/x/text" {
				out[f.ID] = f
			}
		}
		return out
	}
	old := ids("v0.3.5")
	for id, fix := range map[string]string{"GO-2021-0113": "0.3.7", "GO-2022-1059": "0.3.8"} {
		f, ok := old[id]
		if !ok {
			t.Errorf("v0.3.5: %s not found (got %v)", id, old)
			continue
		}
		if len(f.Fixed) != 1 || f.Fixed[0] != fix {
			t.Errorf("%s fixed = %v, want %s", id, f.Fixed, fix)
		}
	}
	// v0.3.8 fixes both (later advisories, such as GO-2026-5970, still apply).
	fixed := ids("v0.3.8")
	for _, id := range []string{"GO-2021-0113", "GO-2022-1059"} {
		if _, ok := fixed[id]; ok {
			t.Errorf("v0.3.8 (fixed) still reports %s", id)
		}
	}
}

// TestMatchStdlib checks that the Go standard library is matched as
// "stdlib" with its version taken from the binary's "go1.x.y".
func TestMatchStdlib(t *testing.T) {
	db, err := vulndb.Open(vulndbtest.Store(t))
	if err != nil {
		t.Fatal(err)
	}
	pkgs := scantestPackages("go1.20.1")
	res, err := match.Match(context.Background(), db, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range res.Findings {
		// GO-2023-1621: crypto/internal/nistec, fixed in 1.19.7 and 1.20.2.
		if f.ID == "GO-2023-1621" {
			found = true
			if len(f.Fixed) == 0 || f.Fixed[len(f.Fixed)-1] != "1.20.2" {
				t.Errorf("GO-2023-1621 fixed = %v", f.Fixed)
			}
		}
	}
	if !found {
		t.Errorf("GO-2023-1621 not reported for go1.20.1 (%d findings)", len(res.Findings))
	}
}

// TestMatchPlatform uses GO-2024-2961, a Windows-only advisory for
// golang.org/x/crypto (every affected import is limited to goos windows).
func TestMatchPlatform(t *testing.T) {
	db, err := vulndb.Open(vulndbtest.Store(t))
	if err != nil {
		t.Fatal(err)
	}
	pkgs := []catalog.Package{{Name: "golang.org/x/crypto", Version: "0.0.0-20200622213623-75b288015ac9", Ecosystem: "Go"}}
	for _, c := range []struct {
		name string
		opts []match.Option
		want bool
	}{
		{"unknown platform", nil, true},
		{"windows", []match.Option{match.WithPlatform("windows", "amd64")}, true},
		{"linux", []match.Option{match.WithPlatform("linux", "amd64")}, false},
	} {
		res, err := match.Match(context.Background(), db, pkgs, c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		got := false
		for _, f := range res.Findings {
			got = got || f.ID == "GO-2024-2961"
		}
		if got != c.want {
			t.Errorf("%s: GO-2024-2961 reported = %v, want %v", c.name, got, c.want)
		}
		if len(res.Findings) < 5 {
			t.Errorf("%s: only %d findings for a 2020 x/crypto", c.name, len(res.Findings))
		}
	}
}
