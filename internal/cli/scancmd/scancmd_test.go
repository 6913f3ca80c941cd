package scancmd_test

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/cli"
	"github.com/berth-dev/berth/internal/cli/clio"
	"github.com/berth-dev/berth/internal/cli/scancmd"
	"github.com/berth-dev/berth/internal/scan/scantest"
)

var timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z|\d+(\.\d+)?(ns|µs|ms|s) ago`)

func execute(t *testing.T, berthScan bool, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	s := clio.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	var code int
	if berthScan {
		code = clio.Execute(context.Background(), scancmd.NewRootCmd(s), args, s)
	} else {
		code = cli.Main(context.Background(), args, s)
	}
	return code, timestamp.ReplaceAllString(out.String(), "TIME"), errOut.String()
}

// berth-scan is berth's scanner, not a second one: the same arguments give
// the same output and exit code from both trees.
func TestBerthScanMatchesBerth(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	img := scantest.Layout(t, scantest.DebianBase(t), scantest.Layer(t,
		scantest.File{Path: "app/node_modules/lodash/package.json", Data: []byte(`{"name":"lodash","version":"4.17.20"}`)},
	))
	if code, _, errOut := execute(t, true, "db", "import", "../../scan/match/testdata/osv", "--db", db); code != 0 {
		t.Fatalf("berth-scan db import: exit %d: %s", code, errOut)
	}
	for _, args := range [][]string{
		{"scan", img, "--db", db, "--no-cache", "--secrets=false", "-o", "json"},
		{"scan", img, "--db", db, "--no-cache", "--fail-on", "CRITICAL"},
		{"scan", img, "--db", db, "--fail-on", "SEVERE"},
		{"db", "status", "--db", db},
	} {
		bc, bout, berr := execute(t, false, args...)
		sc, sout, serr := execute(t, true, args...)
		if bc != sc || bout != sout {
			t.Errorf("%v: berth exit %d, berth-scan exit %d; outputs differ:\n--- berth\n%s\n--- berth-scan\n%s", args, bc, sc, bout, sout)
		}
		if strings.TrimPrefix(berr, "berth:") != strings.TrimPrefix(serr, "berth-scan:") {
			t.Errorf("%v: errors differ: %q vs %q", args, berr, serr)
		}
	}
	if code, out, _ := execute(t, true, "scan", img, "--db", db, "--no-cache", "-o", "json"); code != 1 || !strings.Contains(out, "lodash") {
		t.Fatalf("berth-scan scan: exit %d, want 1 with the lodash finding:\n%s", code, out)
	}
}
