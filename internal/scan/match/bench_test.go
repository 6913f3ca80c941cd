package match_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/scan/catalog"
	"github.com/berth-dev/berth/internal/scan/match"
	"github.com/berth-dev/berth/internal/vulndb"
	"github.com/berth-dev/berth/internal/vulndb/vulndbtest"
)

// benchPackages are the modules berth's go.mod requires (a few hundred real
// modules) and an old standard library.
func benchPackages(b *testing.B) []catalog.Package {
	data, err := os.ReadFile("../../../go.mod")
	if err != nil {
		b.Fatal(err)
	}
	pkgs := []catalog.Package{{Name: "stdlib", Version: "1.21.0", Ecosystem: "Go"}}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && strings.Contains(f[0], ".") && strings.HasPrefix(f[1], "v") {
			pkgs = append(pkgs, catalog.Package{Name: f[0], Version: strings.TrimPrefix(f[1], "v"), Ecosystem: "Go"})
		}
	}
	if len(pkgs) < 50 {
		b.Fatalf("only %d modules in go.mod", len(pkgs))
	}
	return pkgs
}

// BenchmarkMatchWarm matches against an opened store whose Go data is
// already loaded: the cost of the matching itself.
func BenchmarkMatchWarm(b *testing.B) {
	db, err := vulndb.Open(vulndbtest.Store(b))
	if err != nil {
		b.Fatal(err)
	}
	pkgs := benchPackages(b)
	if _, err := match.Match(context.Background(), db, pkgs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := match.Match(context.Background(), db, pkgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(pkgs)), "packages")
}

// BenchmarkOpenAndMatch opens the store and loads the Go ecosystem on every
// iteration, as one `berth scan` process does.
func BenchmarkOpenAndMatch(b *testing.B) {
	dir := vulndbtest.Store(b)
	pkgs := benchPackages(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		db, err := vulndb.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := match.Match(context.Background(), db, pkgs); err != nil {
			b.Fatal(err)
		}
	}
}
