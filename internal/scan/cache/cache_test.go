package cache_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/scan/cache"
)

type entry struct {
	Name  string
	Items []int
}

func TestPutGet(t *testing.T) {
	c, err := cache.New(filepath.Join(t.TempDir(), "c"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := cache.Key("sha256:0123abcd", "catalog-v1")
	if err != nil {
		t.Fatal(err)
	}
	var got entry
	if ok, err := c.Get(key, &got); ok || err != nil {
		t.Fatalf("empty cache: ok %v err %v", ok, err)
	}
	want := entry{Name: "layer", Items: []int{1, 2, 3}}
	if err := c.Put(key, want); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Get(key, &got); !ok || err != nil || got.Name != "layer" || len(got.Items) != 3 {
		t.Fatalf("got %+v ok %v err %v", got, ok, err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir(), "sha256-0123abcd_catalog-v1.json")); err != nil {
		t.Errorf("entry file: %v", err)
	}
}

func TestBadKeys(t *testing.T) {
	c, err := cache.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"../x", "a/b", "", ".hidden", "x\x00y", "sha256:abc"} {
		if err := c.Put(k, 1); !errors.Is(err, cache.ErrBadKey) {
			t.Errorf("Put(%q): %v, want ErrBadKey", k, err)
		}
	}
	for _, parts := range [][]string{{"../etc"}, {"a", "b/c"}, {""}} {
		if _, err := cache.Key(parts...); !errors.Is(err, cache.ErrBadKey) {
			t.Errorf("Key(%q): %v, want ErrBadKey", parts, err)
		}
	}
}

func TestConcurrentPut(t *testing.T) {
	c, err := cache.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if err := c.Put("same", entry{Name: "v", Items: make([]int, 10000)}); err != nil {
				t.Error(err)
			}
			var e entry
			if ok, err := c.Get("same", &e); err != nil || (ok && len(e.Items) != 10000) {
				t.Errorf("reader %d saw a partial entry: ok %v err %v len %d", i, ok, err, len(e.Items))
			}
		})
	}
	wg.Wait()
	files, _ := filepath.Glob(filepath.Join(c.Dir(), "*"))
	if len(files) != 1 {
		t.Errorf("files left: %v", files)
	}
}
