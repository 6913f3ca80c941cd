package vulndb_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/vulndb"
	"github.com/berth-dev/berth/internal/vulndb/vulndbtest"
)

const goodRecord = `{"schema_version":"1.6.0","id":"TEST-0001","modified":"2026-01-02T00:00:00Z",
"summary":"a test record",
"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},
"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.15-1~deb12u1"}]}]}]}`

func TestImportRealGoVulnDB(t *testing.T) {
	src := vulndbtest.GoOSVDir(t)
	n, _ := filepath.Glob(filepath.Join(src, "*.json"))
	dir := filepath.Join(t.TempDir(), "db")
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	res, err := vulndb.Import(context.Background(), dir, src, vulndb.ImportOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records+res.Withdrawn != len(n) || res.Skipped != 0 {
		t.Errorf("records %d + withdrawn %d, skipped %d; want %d files, 0 skipped (%v)", res.Records, res.Withdrawn, res.Skipped, len(n), res.Warnings)
	}
	if len(n) < 4000 {
		t.Errorf("only %d OSV files in %s", len(n), src)
	}
	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := db.Metadata()
	if m.Ecosystems["Go"].Advisories < 4000 || !m.UpdatedAt.Equal(now) || len(m.Sources) != 1 {
		t.Errorf("metadata = %+v", m)
	}
	advs, err := db.Lookup("Go", "golang.org/x/text")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range advs {
		if a.ID == "GO-2021-0113" {
			found = true
		}
	}
	if !found {
		t.Errorf("GO-2021-0113 not stored for golang.org/x/text (%d advisories)", len(advs))
	}
	std, _ := db.Lookup("Go", "stdlib")
	if len(std) < 100 {
		t.Errorf("stdlib has %d advisories, want many", len(std))
	}
}

func writeZip(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "all.zip")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportZipRefusesTraversalAndSkipsCorrupt(t *testing.T) {
	base := t.TempDir()
	zipPath := writeZip(t, map[string]string{
		"TEST-0001.json":        goodRecord,
		"../../escape.json":     strings.Replace(goodRecord, "TEST-0001", "TEST-0002", 1),
		"/abs.json":             strings.Replace(goodRecord, "TEST-0001", "TEST-0003", 1),
		"broken.json":           `{"id": "TEST-0004", "affected": [`,
		"bad-event.json":        `{"id":"TEST-0005","affected":[{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1","fixed":"2"}]}]}]}`,
		"no-id.json":            `{"summary":"nothing"}`,
		"not-an-object.json":    `42`,
		"README.txt":            "ignored",
		"nested/TEST-0006.json": strings.Replace(goodRecord, "TEST-0001", "TEST-0006", 1),
	})
	dir := filepath.Join(base, "store", "db")
	res, err := vulndb.Import(context.Background(), dir, zipPath, vulndb.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 2 || res.Skipped != 6 {
		t.Errorf("records %d skipped %d, want 2 and 6: %q", res.Records, res.Skipped, res.Warnings)
	}
	joined := strings.Join(res.Warnings, "\n")
	for _, want := range []string{`"../../escape.json": unsafe path`, `"/abs.json": unsafe path`, "broken.json", "bad-event.json", "no-id.json"} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
	// Nothing was written outside the store.
	for _, p := range []string{filepath.Join(base, "escape.json"), filepath.Join(base, "store", "escape.json"), "/abs.json"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s exists", p)
		}
	}
}

func TestImportZipBombIsBounded(t *testing.T) {
	// 64 MiB of spaces compresses to ~64 KiB; each member is over the record
	// limit, and together they are over the total limit.
	big := strings.Repeat(" ", 64<<20)
	zipPath := writeZip(t, map[string]string{"a.json": big, "b.json": big, "ok.json": goodRecord})
	lim := vulndb.Limits{MaxRecordBytes: 1 << 20, MaxTotalBytes: 4 << 20, MaxRecords: 100}
	res, err := vulndb.Import(context.Background(), filepath.Join(t.TempDir(), "db"), zipPath, vulndb.ImportOptions{Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 1 || res.Skipped != 2 {
		t.Errorf("records %d skipped %d, want 1 and 2: %q", res.Records, res.Skipped, res.Warnings)
	}

	// A member whose header lies about its size is cut off while reading.
	lim = vulndb.Limits{MaxRecordBytes: 1 << 20, MaxTotalBytes: 3 << 20, MaxRecords: 100}
	files := map[string]string{}
	for i := range 5 {
		files[string(rune('a'+i))+".json"] = strings.Replace(goodRecord, "TEST-0001", "TEST-000"+string(rune('a'+i)), 1) + strings.Repeat(" ", 900<<10)
	}
	zipPath = writeZip(t, files)
	_, err = vulndb.Import(context.Background(), filepath.Join(t.TempDir(), "db"), zipPath, vulndb.ImportOptions{Limits: lim})
	if !errors.Is(err, vulndb.ErrLimit) {
		t.Errorf("err = %v, want ErrLimit", err)
	}
}

func TestImportSingleFile(t *testing.T) {
	d := t.TempDir()
	good := filepath.Join(d, "good.json")
	bad := filepath.Join(d, "bad.json")
	os.WriteFile(good, []byte(goodRecord), 0o644)
	os.WriteFile(bad, []byte(`{"id": "X", "affected": [{"package": {"ecosystem": "npm", "name": "x"}, "ranges": [{"type": "WEIRD"}]}]}`), 0o644)
	dir := filepath.Join(d, "db")
	if _, err := vulndb.Import(context.Background(), dir, bad, vulndb.ImportOptions{}); err == nil || !strings.Contains(err.Error(), `unknown type "WEIRD"`) {
		t.Errorf("corrupt single file: err = %v", err)
	}
	if _, err := vulndb.Open(dir); !errors.Is(err, vulndb.ErrNoDatabase) {
		t.Errorf("store after failed import: %v", err)
	}
	t1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if _, err := vulndb.Import(context.Background(), dir, good, vulndb.ImportOptions{Now: t1}); err != nil {
		t.Fatal(err)
	}
	// A second import merges; a record with the same ID replaces the old one.
	newer := strings.Replace(goodRecord, "a test record", "updated", 1)
	os.WriteFile(good, []byte(newer), 0o644)
	other := filepath.Join(d, "other.json")
	os.WriteFile(other, []byte(strings.Replace(strings.Replace(goodRecord, "TEST-0001", "TEST-0009", 1), "openssl", "curl", 1)), 0o644)
	if _, err := vulndb.Import(context.Background(), dir, good, vulndb.ImportOptions{Now: t1.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := vulndb.Import(context.Background(), dir, other, vulndb.ImportOptions{Now: t1.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	advs, _ := db.Lookup("Debian:12", "openssl")
	if len(advs) != 1 || advs[0].Summary != "updated" {
		t.Errorf("openssl advisories = %+v", advs)
	}
	if advs, _ := db.Lookup("Debian", "curl"); len(advs) != 1 {
		t.Errorf("curl advisories = %+v", advs)
	}
	if m := db.Metadata(); m.Advisories != 2 || len(m.Sources) != 3 {
		t.Errorf("meta = %+v", m)
	}
}

func TestCheckAge(t *testing.T) {
	d := t.TempDir()
	src := filepath.Join(d, "r.json")
	os.WriteFile(src, []byte(goodRecord), 0o644)
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if _, err := vulndb.Import(context.Background(), filepath.Join(d, "db"), src, vulndb.ImportOptions{Now: at}); err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(filepath.Join(d, "db"))
	if err != nil {
		t.Fatal(err)
	}
	week := 7 * 24 * time.Hour
	if err := db.CheckAge(at.Add(6*24*time.Hour), week); err != nil {
		t.Errorf("6 days old: %v", err)
	}
	err = db.CheckAge(at.Add(8*24*time.Hour), week)
	if !errors.Is(err, vulndb.ErrTooOld) || !strings.Contains(err.Error(), "--max-db-age") {
		t.Errorf("8 days old: %v", err)
	}
	if err := db.CheckAge(at.Add(80*24*time.Hour), 0); err != nil {
		t.Errorf("check disabled: %v", err)
	}
}

func TestNormalizeName(t *testing.T) {
	if got := vulndb.NormalizeName("PyPI", "Zope.Interface_x"); got != "zope-interface-x" {
		t.Errorf("got %q", got)
	}
	if got := vulndb.NormalizeName("npm", "Foo_Bar"); got != "Foo_Bar" {
		t.Errorf("got %q", got)
	}
}

func TestImportDirSkipsSymlinks(t *testing.T) {
	d := t.TempDir()
	outside := filepath.Join(d, "outside.json")
	os.WriteFile(outside, []byte(strings.Replace(goodRecord, "TEST-0001", "TEST-OUT", 1)), 0o644)
	tree := filepath.Join(d, "tree")
	os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
	os.WriteFile(filepath.Join(tree, "sub", "in.json"), []byte(goodRecord), 0o644)
	if err := os.Symlink(outside, filepath.Join(tree, "link.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(d, filepath.Join(tree, "up")); err != nil {
		t.Fatal(err)
	}
	res, err := vulndb.Import(context.Background(), filepath.Join(d, "db"), tree, vulndb.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 1 || res.Skipped != 1 || !strings.Contains(strings.Join(res.Warnings, ""), "not a regular file") {
		t.Errorf("records %d skipped %d warnings %q; want 1, 1 (the symlink)", res.Records, res.Skipped, res.Warnings)
	}
}

// A damaged ecosystem file gives a clear error on lookup, whatever the
// damage, and never a panic; an import replaces the damaged store.
func TestDamagedEcosystemFile(t *testing.T) {
	d := t.TempDir()
	good := filepath.Join(d, "good.json")
	os.WriteFile(good, []byte(goodRecord), 0o644)
	dir := filepath.Join(d, "db")
	if _, err := vulndb.Import(context.Background(), dir, good, vulndb.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, db.Metadata().Ecosystems["Debian"].File)
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	damages := map[string][]byte{
		"empty":             {},
		"truncated header":  orig[:5],
		"huge index length": append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, orig[8:]...),
		"truncated records": orig[:len(orig)-10],
		"garbage index":     append(append([]byte{}, orig[:8]...), bytes.Repeat([]byte{0x42}, len(orig)-8)...),
		"records not json":  append(append([]byte{}, orig[:len(orig)-30]...), bytes.Repeat([]byte{'}'}, 30)...),
	}
	for name, data := range damages {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			db, err := vulndb.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Lookup("Debian:12", "openssl"); err == nil || !strings.Contains(err.Error(), "import the data again") {
				t.Fatalf("lookup in a damaged file: err = %v, want a clear error", err)
			}
		})
	}
	res, err := vulndb.Import(context.Background(), dir, good, vulndb.ImportOptions{})
	if err != nil {
		t.Fatalf("import over a damaged store: %v", err)
	}
	if !strings.Contains(res.Replaced, "replaces it") {
		t.Errorf("Replaced = %q, want it to say the damaged store was replaced", res.Replaced)
	}
	db, err = vulndb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if advs, err := db.Lookup("Debian:12", "openssl"); err != nil || len(advs) != 1 {
		t.Fatalf("after re-import: %d advisories, %v", len(advs), err)
	}
}
