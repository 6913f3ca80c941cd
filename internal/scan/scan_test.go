package scan_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/scan"
	"github.com/berth-dev/berth/internal/scan/match"
	"github.com/berth-dev/berth/internal/scan/scantest"
	"github.com/berth-dev/berth/internal/vulndb"
	"github.com/berth-dev/berth/internal/vulndb/vulndbtest"
)

// store imports the real Go vulnerability database plus the hand-written OS
// and npm fixtures of scan/match into a fresh store.
func store(t *testing.T, at time.Time) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	for _, src := range []string{vulndbtest.GoOSVDir(t), "match/testdata/osv"} {
		if _, err := vulndb.Import(context.Background(), dir, src, vulndb.ImportOptions{Now: at}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRunFindsRealAdvisoriesInImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go binary")
	}
	now := time.Now()
	bin := scantest.GoBinary(t, map[string]string{"golang.org/x/text": "v0.3.5"}, scantest.TextMain)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	img := scantest.Layout(t, scantest.DebianBase(t), scantest.Layer(t,
		scantest.File{Path: "app/server", Data: data, Mode: 0o755},
		scantest.File{Path: "app/node_modules/lodash/package.json", Data: []byte(`{"name":"lodash","version":"4.17.20"}`)},
	))
	opts := scan.DefaultOptions()
	opts.Image = img
	opts.DBDir = store(t, now.Add(-time.Hour))
	opts.Catalog.CacheDir = t.TempDir()
	opts.Catalog.Secrets = false

	for _, pass := range []string{"cold", "warm"} {
		r, err := scan.Run(context.Background(), opts)
		if err != nil {
			t.Fatalf("%s: %v", pass, err)
		}
		got := map[string]match.Finding{}
		for _, f := range r.Verdict.Findings {
			got[f.ID+" "+f.Package.Name] = f
		}
		for _, want := range []string{
			"GO-2021-0113 golang.org/x/text", "GO-2022-1059 golang.org/x/text", // real advisories
			"TEST-DEB-0001 libssl3", "TEST-DEB-0002 libc6", "TEST-NPM-0001 lodash", // fixtures
		} {
			f, ok := got[want]
			if !ok {
				t.Errorf("%s: %s not found; findings %d, packages %d, warnings %v", pass, want, len(r.Verdict.Findings), len(r.Packages), r.Warnings)
				continue
			}
			if f.Package.Layer == "" || f.Package.Path == "" {
				t.Errorf("%s: %s has no layer or path: %+v", pass, want, f.Package)
			}
		}
		if f := got["GO-2022-1059 golang.org/x/text"]; f.Package.Path != "/app/server" || len(f.Fixed) != 1 || f.Fixed[0] != "0.3.8" {
			t.Errorf("%s: GO-2022-1059 = %+v", pass, f)
		}
		if r.OS == nil || r.OS.ID != "debian" || r.Verdict.Pass() {
			t.Errorf("%s: os %+v, pass %v", pass, r.OS, r.Verdict.Pass())
		}
	}
}

func TestRunRefusesStaleDatabase(t *testing.T) {
	opts := scan.DefaultOptions()
	opts.Image = "does-not-matter"
	opts.DBDir = store(t, time.Now().Add(-8*24*time.Hour))
	_, err := scan.Run(context.Background(), opts)
	if !errors.Is(err, vulndb.ErrTooOld) {
		t.Fatalf("err = %v, want ErrTooOld", err)
	}
}

func TestRunWithoutDatabase(t *testing.T) {
	opts := scan.DefaultOptions()
	opts.Image = "does-not-matter"
	opts.DBDir = t.TempDir()
	if _, err := scan.Run(context.Background(), opts); !errors.Is(err, vulndb.ErrNoDatabase) {
		t.Fatalf("err = %v, want ErrNoDatabase", err)
	}
}
