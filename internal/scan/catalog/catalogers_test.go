package catalog

import (
	"archive/zip"
	"bytes"
	"sort"
	"strings"
	"testing"
)

func TestKindOf(t *testing.T) {
	tests := map[string]fileKind{
		"etc/os-release":                                       kindOSRelease,
		"usr/lib/os-release":                                   kindOSRelease,
		"var/lib/dpkg/status":                                  kindDpkg,
		"var/lib/dpkg/status.d/libc6":                          kindDpkg,
		"var/lib/dpkg/status.d/libc6.md5sums":                  kindNone,
		"lib/apk/db/installed":                                 kindApk,
		"usr/lib/sysimage/rpm/rpmdb.sqlite":                    kindRpm,
		"app/node_modules/lodash/package.json":                 kindNpm,
		"node_modules/@babel/core/package.json":                kindNpm,
		"a/node_modules/b/node_modules/c/package.json":         kindNpm,
		"app/node_modules/lodash/test/fixture/package.json":    kindNone,
		"app/node_modules/.bin/package.json":                   kindNone,
		"app/package.json":                                     kindNone,
		"usr/lib/python3/site-packages/x-1.dist-info/METADATA": kindPython,
		"usr/lib/python3/site-packages/x-1.egg-info/PKG-INFO":  kindPython,
		"usr/lib/python3/site-packages/x-1.egg-info":           kindPython,
		"opt/app.jar":       kindJava,
		"usr/local/bin/app": kindNone,
	}
	for p, want := range tests {
		if got := kindOf(p); got != want {
			t.Errorf("kindOf(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestParseJarNested(t *testing.T) {
	slf4j := readFile(t, "testdata/java/slf4j-nop-1.7.32.jar")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range map[string][]byte{
		"BOOT-INF/lib/slf4j-nop-1.7.32.jar":             slf4j,
		"META-INF/maven/com.example/app/pom.properties": []byte("groupId=com.example\nartifactId=app\nversion=1.0.0\n"),
		"META-INF/maven/com.example/big/pom.properties": bytes.Repeat([]byte("#"), 100<<10),
	} {
		f, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	pkgs, err := parseJar(buf.Bytes(), 1<<20, 0)
	if err == nil || !strings.Contains(err.Error(), "over the 65536-byte limit") {
		t.Errorf("oversized pom.properties: error %v", err)
	}
	var got []string
	for _, p := range pkgs {
		got = append(got, p.Name+"@"+p.Version)
	}
	sort.Strings(got)
	want := []string{"com.example:app@1.0.0", "org.slf4j:slf4j-nop@1.7.32"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := parseJar([]byte("PK\x03\x04 truncated"), 1<<20, 0); err == nil {
		t.Error("a broken jar gave no error")
	}
}
