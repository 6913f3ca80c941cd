package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// run executes berth with args and returns exit code, stdout and stderr with
// dir replaced by $DIR.
func run(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	clean := func(s string) string {
		if dir == "" {
			return s
		}
		return strings.ReplaceAll(s, dir, "$DIR")
	}
	return code, clean(out.String()), clean(errOut.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s mismatch (-want +got):\n-%s\n+%s", path, want, got)
	}
}

func TestGolden(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"sandbox-help", []string{"sandbox", "--help"}, 0},
		{"sandbox-status-none", []string{"sandbox", "status", "--state-dir", dir}, 2},
		{"sandbox-kubeconfig-none", []string{"sandbox", "kubeconfig", "--state-dir", dir}, 2},
		{"sandbox-down-none", []string{"sandbox", "down", "--state-dir", dir}, 2},
		{"down-none", []string{"down", "--state-dir", dir}, 0},
		{"sandbox-logs-unknown", []string{"sandbox", "logs", "kubelet", "--state-dir", dir}, 2},
		{"unknown-flag", []string{"sandbox", "up", "--bogus"}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(t, dir, c.args...)
			if code != c.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, c.code, errOut)
			}
			golden(t, c.name, fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", code, out, errOut))
		})
	}
}

func TestVersionNamesPinnedComponents(t *testing.T) {
	code, out, _ := run(t, "", "version")
	if code != 0 || !strings.Contains(out, "kubernetes v1.37.2, etcd v3.6.16, kwok v0.7.0") {
		t.Errorf("version = %d %q", code, out)
	}
}
