package catalog_test

import (
	"context"
	"os"
	osexec "os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/internal/oci"
	"github.com/berth-dev/berth/internal/scan/catalog"
	"github.com/berth-dev/berth/internal/testenv"
)

// TestScanImageSources scans one image pushed to a registry, written as an
// OCI layout and saved as a docker tarball: the inventories match.
func TestScanImageSources(t *testing.T) {
	status, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	osRelease, err := os.ReadFile("testdata/debian-12.os-release")
	if err != nil {
		t.Fatal(err)
	}
	lodash, err := os.ReadFile("testdata/npm/lodash/package.json")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	base := filepath.Join(root, "base")
	for p, b := range map[string][]byte{"etc/os-release": osRelease, "var/lib/dpkg/status": status, "app/node_modules/lodash/package.json": lodash} {
		if err := os.MkdirAll(filepath.Join(base, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Layers from real files, as a build tool would write them.
	tarPath := filepath.Join(root, "layer.tar")
	if out, err := exec(t, "tar", "-C", base, "-cf", tarPath, "."); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	l, err := tarball.LayerFromFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}

	reg := testenv.NewRegistry(t)
	ref := reg.Host + "/berth/scan-test:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	layoutDir := filepath.Join(root, "layout")
	lp, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(root, "image.tar")
	tag, err := name.NewTag("berth/scan-test:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(saved, tag, img); err != nil {
		t.Fatal(err)
	}

	var first []catalog.Package
	for _, src := range []string{ref, layoutDir, saved} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			got, source, err := oci.Open(context.Background(), src, oci.Options{Insecure: true})
			if err != nil {
				t.Fatal(err)
			}
			opts := catalog.DefaultOptions()
			opts.Image, opts.Digest, opts.CompressedSizes = source.Ref, source.Digest, source.LayerSizes
			opts.StoredCompressed = source.StoresCompressed()
			inv, err := catalog.Scan(context.Background(), got, opts)
			if err != nil {
				t.Fatal(err)
			}
			if inv.OS == nil || inv.OS.ID != "debian" || len(inv.Packages) < 50 {
				t.Fatalf("%s: os %+v, %d packages", source.Kind, inv.OS, len(inv.Packages))
			}
			if first == nil {
				first = inv.Packages
				return
			}
			if diff := cmp.Diff(first, inv.Packages); diff != "" {
				t.Errorf("%s differs from the registry image (-registry +this):\n%s", source.Kind, diff)
			}
		})
	}
}

func exec(t *testing.T, name string, args ...string) ([]byte, error) {
	t.Helper()
	return osexec.Command(name, args...).CombinedOutput()
}
