package catalog

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func cacheTestImage(t testing.TB) countingImage {
	status := readFile(t, "/var/lib/dpkg/status")
	img := image(t,
		layer(t, file("etc/os-release", readFile(t, "testdata/debian-12.os-release")), file("var/lib/dpkg/status", status)),
		layer(t, file("app/node_modules/lodash/package.json", readFile(t, "testdata/npm/lodash/package.json"))),
		layer(t, exe("app/bin/server", goBinaries(t)["plain"]), whiteout("app/node_modules/lodash")),
	)
	return countingImage{Image: img, reads: &atomic.Int64{}}
}

func TestCacheRescanReadsNoLayer(t *testing.T) {
	img := cacheTestImage(t)
	opts := DefaultOptions()
	opts.CacheDir = t.TempDir()
	cold, err := Scan(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.reads.Load(); got != 3 {
		t.Fatalf("cold scan read %d layers, want 3", got)
	}
	img.reads.Store(0)
	warm, err := Scan(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.reads.Load(); got != 0 {
		t.Errorf("warm scan read %d layers, want 0", got)
	}
	if diff := cmp.Diff(cold, warm); diff != "" {
		t.Errorf("warm inventory differs (-cold +warm):\n%s", diff)
	}
	if len(findPkg(warm, "lodash")) != 0 || len(findPkg(warm, "libc6")) != 1 || len(findPkg(warm, "golang.org/x/text")) != 1 {
		t.Errorf("warm inventory: %d packages", len(warm.Packages))
	}

	// Other options that change results use other entries.
	opts.Secrets = false
	if _, err := Scan(context.Background(), img, opts); err != nil {
		t.Fatal(err)
	}
	if got := img.reads.Load(); got != 3 {
		t.Errorf("scan with other options read %d layers, want 3", got)
	}

	// A corrupt entry is a miss, and is rewritten.
	entries, err := filepath.Glob(filepath.Join(opts.CacheDir, "*.json"))
	if err != nil || len(entries) != 6 {
		t.Fatalf("cache entries %v (err %v), want 6", entries, err)
	}
	for _, e := range entries {
		if err := os.WriteFile(e, []byte("{not json"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img.reads.Store(0)
	again, err := Scan(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.reads.Load(); got != 3 || len(again.Packages) != len(cold.Packages) {
		t.Errorf("after corrupting the cache: %d reads, %d packages", got, len(again.Packages))
	}
}

func TestCacheConcurrentScans(t *testing.T) {
	img := cacheTestImage(t)
	opts := DefaultOptions()
	opts.CacheDir = t.TempDir()
	const n = 4
	invs := make([]*Inventory, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { invs[i], errs[i] = Scan(context.Background(), img, opts) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if diff := cmp.Diff(invs[0], invs[i]); diff != "" {
			t.Errorf("scan %d differs (-first +this):\n%s", i, diff)
		}
	}
	img.reads.Store(0)
	warm, err := Scan(context.Background(), img, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.reads.Load(); got != 0 {
		t.Errorf("scan after concurrent scans read %d layers, want 0", got)
	}
	if diff := cmp.Diff(invs[0], warm); diff != "" {
		t.Errorf("warm inventory differs:\n%s", diff)
	}
	left, _ := filepath.Glob(filepath.Join(opts.CacheDir, ".tmp-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
