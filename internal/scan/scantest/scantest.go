package scantest

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/scan/catalog"
)

// GoBinary compiles main (the source of package main) in a fresh module that
// requires the given module versions, and returns the binary's path. It
// needs the Go module proxy (the modules are fetched with go mod tidy).
func GoBinary(t testing.TB, requires map[string]string, main string) string {
	t.Helper()
	dir := t.TempDir()
	var gomod strings.Builder
	gomod.WriteString("module example.test/vulnapp\n\ngo 1.22\n\nrequire (\n")
	mods := make([]string, 0, len(requires))
	for m := range requires {
		mods = append(mods, m)
	}
	sort.Strings(mods)
	for _, m := range mods {
		fmt.Fprintf(&gomod, "\t%s %s\n", m, requires[m])
	}
	gomod.WriteString(")\n")
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "app")
	for _, args := range [][]string{{"mod", "tidy"}, {"build", "-trimpath", "-o", bin, "."}} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return bin
}

// GoPackages reads a Go binary's build information the way a cataloger does:
// its dependency modules and the standard library ("stdlib").
func GoPackages(t testing.TB, bin, pathInImage string) []catalog.Package {
	t.Helper()
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := []catalog.Package{{Name: "stdlib", Version: bi.GoVersion, Ecosystem: "Go", Cataloger: "gobinary", Path: pathInImage}}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		pkgs = append(pkgs, catalog.Package{Name: d.Path, Version: d.Version, Ecosystem: "Go", Cataloger: "gobinary", Path: pathInImage,
			PURL: "pkg:golang/" + d.Path + "@" + d.Version})
	}
	return pkgs
}

// TextMain uses golang.org/x/text/language, the package of GO-2021-0113 and
// GO-2022-1059.
const TextMain = `package main

import (
	"fmt"
	"os"

	"golang.org/x/text/language"
)

func main() {
	t, err := language.Parse(os.Args[len(os.Args)-1])
	fmt.Println(t, err)
}
`
