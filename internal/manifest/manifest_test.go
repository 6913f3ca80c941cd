package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    []string // ID@line
		wantErr string
	}{
		{
			name: "two documents with comments and blank lines",
			data: "# header\n\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: prod\n",
			want: []string{"ConfigMap a@1", "apps/Deployment prod/web@10"},
		},
		{
			name: "list is flattened",
			data: `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}]}`,
			want: []string{"Secret s@1"},
		},
		{
			// Only a List kind is one: a custom resource with a
			// top-level items array is an object of its own.
			name: "an object with items is not a list",
			data: "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c\n",
			want: []string{"example.com/Widget w@1"},
		},
		{
			name:    "invalid yaml names the line",
			data:    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [b\n",
			wantErr: "x.yaml:",
		},
		{
			name:    "missing kind",
			data:    "apiVersion: v1\nmetadata:\n  name: a\n",
			wantErr: "x.yaml:1: not a Kubernetes object: missing kind",
		},
		{
			name:    "scalar document",
			data:    "just a string\n",
			wantErr: "x.yaml:1: invalid YAML",
		},
		// Documents the line splitter does not split off must not be
		// dropped without a word.
		{
			name:    "separator followed by a tab",
			data:    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\t\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
			wantErr: "x.yaml:1: holds 2 YAML documents",
		},
		{
			name:    "document end marker",
			data:    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n...\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
			wantErr: "x.yaml:1: content after the document cannot be read",
		},
		{
			name: "content on the separator line",
			data: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n--- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n--- # next\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
			want: []string{"ConfigMap a@1", "ConfigMap b@5", "ConfigMap c@6"},
		},
		{
			name: "byte order mark and a lone end marker",
			data: "\xef\xbb\xbfapiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n...\n",
			want: []string{"ConfigMap a@1"},
		},
		{
			name:    "utf-16",
			data:    "\xff\xfea\x00p\x00i\x00",
			wantErr: "x.yaml:1: not UTF-8 text",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Parse("x.yaml", []byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, fmt.Sprintf("%s@%d", o.ID(), o.Source.Line))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n"

func TestLoadDir(t *testing.T) {
	root := t.TempDir()
	write(t, root, "b/cm.yaml", strings.Replace(cm, "%s", "b", 1))
	write(t, root, "a.yml", strings.Replace(cm, "%s", "a", 1))
	write(t, root, "README.md", "not yaml")
	write(t, root, ".git/config.yaml", "ignored: true")
	write(t, root, ".berth/policy.yaml", "ignored: true")
	objs, err := LoadDir(root, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Source.File+"="+o.Object.GetName())
	}
	if diff := cmp.Diff([]string{"a.yml=a", "b/cm.yaml=b"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestLoadDirRefusesHostileInput(t *testing.T) {
	t.Run("symlink outside", func(t *testing.T) {
		root, outside := t.TempDir(), t.TempDir()
		write(t, outside, "secret.yaml", strings.Replace(cm, "%s", "x", 1))
		if err := os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(root, "link.yaml")); err != nil {
			t.Fatal(err)
		}
		_, err := LoadDir(root, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), "link.yaml: symlink points outside the repository") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("symlink inside is fine", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, "real.yaml", strings.Replace(cm, "%s", "x", 1))
		if err := os.Symlink("real.yaml", filepath.Join(root, "z-link.yaml")); err != nil {
			t.Fatal(err)
		}
		objs, err := LoadDir(root, LoadOptions{})
		if err != nil || len(objs) != 2 {
			t.Fatalf("objs = %d, err = %v", len(objs), err)
		}
	})
	t.Run("symlink loop", func(t *testing.T) {
		root := t.TempDir()
		if err := os.Symlink("b.yaml", filepath.Join(root, "a.yaml")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("a.yaml", filepath.Join(root, "b.yaml")); err != nil {
			t.Fatal(err)
		}
		_, err := LoadDir(root, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), "symlink") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("alias bomb", func(t *testing.T) {
		// Nine levels of nine aliases: 387 million strings if expanded.
		var b strings.Builder
		b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
		for i := 1; i <= 9; i++ {
			fmt.Fprintf(&b, "x%d: &a%d [*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
		}
		_, err := Parse("bomb.yaml", []byte(b.String()))
		if err == nil || !strings.Contains(err.Error(), "bomb.yaml") || !strings.Contains(err.Error(), "alias") {
			t.Fatalf("err = %v, want the file named and the aliasing refused", err)
		}
	})
	t.Run("alias bomb of one large string", func(t *testing.T) {
		// The decoder's guard counts aliases against nodes: one 1 MiB
		// string named 300 times passes it, and would be written out 300
		// times (300 MiB) when the document becomes JSON.
		doc := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nbig: &s \"" + strings.Repeat("x", 1<<20) + "\"\nl: [" +
			strings.TrimSuffix(strings.Repeat("*s,", 300), ",") + "]\n"
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Parse("bomb.yaml", []byte(doc))
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "bomb.yaml") || !strings.Contains(err.Error(), "alias") {
			t.Fatalf("err = %v, want the file named and the aliasing refused", err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
			t.Errorf("refusing it allocated %d MiB: the aliases were expanded", grew>>20)
		}
	})
	t.Run("aliases that expand little are kept", func(t *testing.T) {
		doc := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: anchors, labels: &l {app: web}, annotations: *l}\ndata: {a: &v hello, b: *v}\n"
		objs, err := Parse("anchors.yaml", []byte(doc))
		if err != nil || len(objs) != 1 || objs[0].Object.GetAnnotations()["app"] != "web" {
			t.Fatalf("objs = %v, err = %v", objs, err)
		}
	})
	t.Run("deep nesting", func(t *testing.T) {
		doc := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: " + strings.Repeat("[", 1<<20) + strings.Repeat("]", 1<<20) + "\n"
		_, err := Parse("deep.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), "deep.yaml") {
			t.Fatalf("err = %v, want the file named", err)
		}
	})
	t.Run("oversized file", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, "big.yaml", strings.Replace(cm, "%s", "x", 1)+"# "+strings.Repeat("x", 2000)+"\n")
		_, err := LoadDir(root, LoadOptions{MaxFileBytes: 1000})
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "big.yaml") {
			t.Fatalf("err = %v", err)
		}
	})
}
