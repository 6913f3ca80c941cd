package catalog

import (
	"archive/tar"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

func TestScanSecrets(t *testing.T) {
	// Made up here, in the shape of real credentials, so no real secret
	// is ever committed.
	aws := "AKIA" + testenv.RandomString(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
	ghp := "ghp_" + testenv.RandomString(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 36)
	config := "# app settings\nregion = eu-west-1\naws_access_key_id = " + aws + "\n" +
		"GITHUB_TOKEN=" + ghp + "\n"
	binary := append([]byte("\x00\x01\x02ELF-ish"), []byte("\naws_access_key_id = "+aws+"\n")...)
	big := strings.Repeat("padding line\n", 100000) + "token = " + ghp + "\n"

	l1 := layer(t,
		file("etc/app/config.env", []byte(config)),
		file("srv/old.env", []byte("GITHUB_TOKEN="+ghp+"\n")),
		file("srv/blob.bin", binary),
		file("srv/big.log", []byte(big)),
	)
	l2 := layer(t, whiteout("srv/old.env"))
	opts := DefaultOptions()
	opts.CacheDir = t.TempDir()
	inv, err := Scan(context.Background(), image(t, l1, l2), opts)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range inv.Secrets {
		got = append(got, s.Path+":"+itoa(s.Line)+" "+s.RuleID)
		if s.Layer != diffID(t, l1) {
			t.Errorf("%s: layer %s", s.RuleID, s.Layer)
		}
		if !strings.Contains(s.Redacted, "REDACTED") {
			t.Errorf("%s: redacted match %q", s.RuleID, s.Redacted)
		}
	}
	want := []string{"/etc/app/config.env:3 aws-access-token", "/etc/app/config.env:4 github-pat"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("secrets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The raw values appear nowhere: not in the inventory, nor in the cache.
	out, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(opts.CacheDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out = append(out, b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{aws, ghp, aws[4:], ghp[4:], ghp[8:30]} {
		if strings.Contains(string(out), secret) {
			t.Errorf("output contains the secret %q", secret)
		}
	}
	t.Logf("redacted: %q, %q", inv.Secrets[0].Redacted, inv.Secrets[1].Redacted)
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// TestScanSecretsFileVersions: the secret scan runs beside the layer walk,
// and its findings still follow each path's final content in the layer:
// a hard link to a file with a secret has it, a file rewritten without the
// secret has none, even when the link came before the rewrite.
func TestScanSecretsFileVersions(t *testing.T) {
	ghp := "ghp_" + testenv.RandomString(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 36)
	secret := []byte("GITHUB_TOKEN=" + ghp + "\n")
	var entries []entry
	for i := range 40 { // more than the queue holds
		entries = append(entries, file("etc/filler/"+itoa(i)+".conf", []byte("key = value\n")))
	}
	entries = append(entries,
		file("srv/a.env", secret),
		entry{name: "srv/link-to-a.env", typ: tar.TypeLink, link: "srv/a.env"},
		file("srv/a.env", []byte("GITHUB_TOKEN=\n")), // rewritten: no secret now
		file("srv/b.env", []byte("nothing here\n")),
		file("srv/b.env", secret), // rewritten: a secret now
		entry{name: "srv/link-to-b.env", typ: tar.TypeLink, link: "srv/b.env"},
	)
	inv, err := Scan(context.Background(), image(t, layer(t, entries...)), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range inv.Secrets {
		got = append(got, s.Path+":"+itoa(s.Line)+" "+s.RuleID)
	}
	want := []string{"/srv/b.env:1 github-pat", "/srv/link-to-a.env:1 github-pat", "/srv/link-to-b.env:1 github-pat"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("secrets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
