package catalog

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// realStatus is the machine's real dpkg database and the names of the
// packages it marks installed, counted independently of the parser.
func realStatus(t *testing.T) ([]byte, []string) {
	t.Helper()
	status := readFile(t, "/var/lib/dpkg/status")
	var installed []string
	for _, para := range strings.Split(string(status), "\n\n") {
		if !strings.Contains(para, "\nStatus: install ok installed") {
			continue
		}
		for _, line := range strings.Split(para, "\n") {
			if name, ok := strings.CutPrefix(line, "Package: "); ok {
				installed = append(installed, name)
			}
		}
	}
	if len(installed) < 50 {
		t.Fatalf("/var/lib/dpkg/status lists only %d installed packages", len(installed))
	}
	return status, installed
}

func TestScanDebianImage(t *testing.T) {
	status, installed := realStatus(t)
	bins := goBinaries(t)
	base := layer(t,
		dir("etc/"), symlink("etc/os-release", "../usr/lib/os-release"),
		file("usr/lib/os-release", readFile(t, "testdata/debian-12.os-release")),
		file("var/lib/dpkg/status", status),
	)
	apps := layer(t,
		file("usr/lib/node_modules/lodash/package.json", readFile(t, "testdata/npm/lodash/package.json")),
		file("srv/app/node_modules/minimist/package.json", readFile(t, "testdata/npm/minimist/package.json")),
		file("usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA", readFile(t, "testdata/python/PyYAML-6.0.dist-info/METADATA")),
		file("usr/lib/python3/dist-packages/PyJWT-2.6.0.egg-info/PKG-INFO", readFile(t, "testdata/python/PyJWT-2.6.0.egg-info/PKG-INFO")),
		file("opt/lib/slf4j-nop-1.7.32.jar", readFile(t, "testdata/java/slf4j-nop-1.7.32.jar")),
		exe("usr/local/bin/app", bins["plain"]),
	)
	inv, err := Scan(context.Background(), image(t, base, apps), Options{Image: "test/debian"})
	if err != nil {
		t.Fatal(err)
	}
	wantOS := &OS{ID: "debian", Name: "Debian GNU/Linux", VersionID: "12", Codename: "bookworm"}
	if diff := cmp.Diff(wantOS, inv.OS); diff != "" {
		t.Errorf("OS (-want +got):\n%s", diff)
	}
	var dpkg []string
	for _, p := range inv.Packages {
		if p.Cataloger == "dpkg" {
			dpkg = append(dpkg, p.Name)
		}
	}
	if len(dpkg) != len(installed) {
		t.Errorf("dpkg packages: got %d, want %d (installed in /var/lib/dpkg/status)", len(dpkg), len(installed))
	}
	libc := findPkg(inv, "libc6")
	if len(libc) != 1 {
		t.Fatalf("libc6: got %v", libc)
	}
	if got := libc[0]; got.SourceName != "glibc" || got.Ecosystem != "Debian:12" || got.Layer != diffID(t, base) ||
		got.Path != "/var/lib/dpkg/status" || !strings.HasPrefix(got.PURL, "pkg:deb/debian/libc6@") {
		t.Errorf("libc6: got %+v", got)
	}
	appLayer := diffID(t, apps)
	for _, tc := range []struct{ name, version, eco, path string }{
		{"lodash", "4.17.20", "npm", "/usr/lib/node_modules/lodash/package.json"},
		{"minimist", "1.2.5", "npm", "/srv/app/node_modules/minimist/package.json"},
		{"PyYAML", "6.0", "PyPI", "/usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA"},
		{"PyJWT", "2.6.0", "PyPI", "/usr/lib/python3/dist-packages/PyJWT-2.6.0.egg-info/PKG-INFO"},
		{"org.slf4j:slf4j-nop", "1.7.32", "Maven", "/opt/lib/slf4j-nop-1.7.32.jar"},
		{"golang.org/x/text", "0.3.5", "Go", "/usr/local/bin/app"},
		{"example.com/plain", "(devel)", "Go", "/usr/local/bin/app"},
	} {
		got := findPkg(inv, tc.name)
		if len(got) != 1 || got[0].Version != tc.version || got[0].Ecosystem != tc.eco || got[0].Path != tc.path || got[0].Layer != appLayer {
			t.Errorf("%s: got %+v, want version %s, ecosystem %s, path %s, layer %s", tc.name, got, tc.version, tc.eco, tc.path, appLayer)
		}
	}
	std := findPkg(inv, "stdlib")
	if len(std) != 1 || std[0].Ecosystem != "Go" || !strings.HasPrefix(std[0].Version, "1.") {
		t.Errorf("stdlib: got %+v", std)
	}
	if inv.Image != "test/debian" || len(inv.Layers) != 2 {
		t.Errorf("image %q layers %v", inv.Image, inv.Layers)
	}
	if len(inv.Warnings) != 0 {
		t.Errorf("warnings: %v", inv.Warnings)
	}
}

func TestScanDistrolessStatusD(t *testing.T) {
	status, _ := realStatus(t)
	var para string
	for _, p := range strings.Split(string(status), "\n\n") {
		if strings.HasPrefix(p, "Package: base-files\n") {
			para = p
		}
	}
	if para == "" {
		t.Fatal("no base-files paragraph in /var/lib/dpkg/status")
	}
	// distroless writes each package's control paragraph without Status.
	var lines []string
	for _, l := range strings.Split(para, "\n") {
		if !strings.HasPrefix(l, "Status:") {
			lines = append(lines, l)
		}
	}
	img := image(t, layer(t,
		file("etc/os-release", readFile(t, "testdata/debian-12.os-release")),
		file("var/lib/dpkg/status.d/base-files", []byte(strings.Join(lines, "\n")+"\n")),
		file("var/lib/dpkg/status.d/base-files.md5sums", []byte("d41d8cd98f00b204e9800998ecf8427e  etc/issue\n")),
	))
	inv, err := Scan(context.Background(), img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != 1 || inv.Packages[0].Name != "base-files" || inv.Packages[0].Ecosystem != "Debian:12" ||
		inv.Packages[0].Path != "/var/lib/dpkg/status.d/base-files" {
		t.Errorf("packages: %+v", inv.Packages)
	}
}

func TestScanAlpine(t *testing.T) {
	img := image(t, layer(t,
		file("etc/os-release", readFile(t, "testdata/alpine/os-release")),
		file("lib/apk/db/installed", readFile(t, "testdata/alpine/installed")),
	))
	inv, err := Scan(context.Background(), img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range inv.Packages {
		got = append(got, p.Ecosystem+" "+p.Name+"@"+p.Version+" src="+p.SourceName+"@"+p.SourceVersion)
	}
	want := []string{
		"Alpine:v3.20 busybox-binsh@1.36.1-r29 src=busybox@1.36.1-r29",
		"Alpine:v3.20 libcrypto3@3.3.1-r0 src=openssl@3.3.1-r0",
		"Alpine:v3.20 musl@1.2.5-r0 src=musl@1.2.5-r0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
}

func TestGoBinaryReplace(t *testing.T) {
	pkgs := goBinaryPackages(goBinaries(t)["replaced"])
	var got []string
	for _, p := range pkgs {
		if p.Name != "stdlib" {
			got = append(got, p.Name+"@"+p.Version)
		}
	}
	want := []string{"example.com/replaced@(devel)", "golang.org/x/text@0.3.7"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if goBinaryPackages([]byte("\x7fELF not really")) != nil {
		t.Error("a non-Go file gave packages")
	}
}

func TestLayerAttribution(t *testing.T) {
	status, installed := realStatus(t)
	paras := strings.Split(string(status), "\n\n")
	half := strings.Join(paras[:len(paras)/2], "\n\n") + "\n"
	first := map[string]bool{}
	for _, p := range paras[:len(paras)/2] {
		if name, ok := strings.CutPrefix(strings.SplitN(p, "\n", 2)[0], "Package: "); ok && strings.Contains(p, "\nStatus: install ok installed") {
			first[name] = true
		}
	}
	l1 := layer(t, file("var/lib/dpkg/status", []byte(half)))
	l2 := layer(t, file("etc/motd", []byte("hello\n")))
	l3 := layer(t, file("var/lib/dpkg/status", status))
	inv, err := Scan(context.Background(), image(t, l1, l2, l3), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != len(installed) {
		t.Fatalf("got %d packages, want %d", len(inv.Packages), len(installed))
	}
	id1, id3 := diffID(t, l1), diffID(t, l3)
	for _, p := range inv.Packages {
		want := id3
		if first[p.Name] {
			want = id1
		}
		if p.Layer != want {
			t.Errorf("%s: layer %s, want %s", p.Name, p.Layer, want)
		}
	}
}
