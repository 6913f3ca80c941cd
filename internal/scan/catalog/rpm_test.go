package catalog

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rpmTestData returns the directory of real rpm databases shipped in the
// go-rpmdb module's testdata, from the module cache.
func rpmTestData(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/erikvarga/go-rpmdb")
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("locating github.com/erikvarga/go-rpmdb in the module cache (go mod download): %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "pkg", "testdata")
}

func TestScanRPM(t *testing.T) {
	db := readFile(t, filepath.Join(rpmTestData(t), "cbl-mariner-2.0", "rpmdb.sqlite"))
	img := image(t, layer(t,
		file("etc/os-release", readFile(t, "testdata/mariner/os-release")),
		file("var/lib/rpm/rpmdb.sqlite", db),
	))
	opts := DefaultOptions()
	opts.CacheDir = t.TempDir()
	inv, err := Scan(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) < 10 {
		t.Fatalf("got %d rpm packages: %+v (warnings %v)", len(inv.Packages), inv.Packages, inv.Warnings)
	}
	ssl := findPkg(inv, "openssl")
	if len(ssl) != 1 || ssl[0].Ecosystem != "Mariner:2.0" || ssl[0].SourceName != "openssl" || ssl[0].Cataloger != "rpm" ||
		!strings.HasPrefix(ssl[0].PURL, "pkg:rpm/mariner/openssl@") || ssl[0].Path != "/var/lib/rpm/rpmdb.sqlite" {
		t.Errorf("openssl: %+v", ssl)
	}
	t.Logf("%d packages, e.g. %+v", len(inv.Packages), ssl)
	// The database was written to a temporary file inside the cache
	// directory only, and removed.
	left, _ := filepath.Glob(filepath.Join(opts.CacheDir, "tmp", "*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// A Berkeley DB database (CentOS 7 style), without os-release.
	img = image(t, layer(t, file("var/lib/rpm/Packages", readFile(t, filepath.Join(rpmTestData(t), "libuuid", "Packages")))))
	inv, err = Scan(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) == 0 || inv.Packages[0].Ecosystem != "Red Hat" || len(inv.Warnings) != 0 {
		t.Errorf("Berkeley DB: packages %+v, warnings %v", inv.Packages, inv.Warnings)
	}

	// A corrupt database is a warning, not a crash.
	img = image(t, layer(t, file("var/lib/rpm/Packages", db[:8192])))
	inv, err = Scan(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "reading rpm database") {
		t.Errorf("warnings %v", inv.Warnings)
	}
}
