package source_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/source"
)

func TestDirHashStaysInsideTheSnapshot(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("apps/real/a.yaml", "one\n")
	if err := os.Symlink("real", filepath.Join(root, "apps", "alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../..", filepath.Join(root, "apps", "up")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../..", "apps/../../x", "apps/up", "apps/up/etc", "/../.."} {
		if got := source.DirHash(root, p); got != "" {
			t.Errorf("DirHash(%q) = %q, want \"\" for a path leaving the snapshot", p, got)
		}
	}
	before, alias := source.DirHash(root, "apps/real"), source.DirHash(root, "apps/alias")
	if before == "" || alias != before {
		t.Fatalf("DirHash of the directory = %q, of a link to it = %q; want the same, not empty", before, alias)
	}
	// A change in the linked directory changes the link's hash: a push
	// there is news for an Application whose path is the link.
	write("apps/real/a.yaml", "two\n")
	if got := source.DirHash(root, "apps/alias"); got == alias {
		t.Errorf("DirHash of the link did not change with its target's content")
	}
}
