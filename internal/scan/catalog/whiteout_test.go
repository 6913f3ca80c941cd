package catalog

import (
	"archive/tar"
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWhiteouts(t *testing.T) {
	bins := goBinaries(t)
	lodash := readFile(t, "testdata/npm/lodash/package.json")
	minimist := readFile(t, "testdata/npm/minimist/package.json")
	pyyaml := readFile(t, "testdata/python/PyYAML-6.0.dist-info/METADATA")
	jar := readFile(t, "testdata/java/slf4j-nop-1.7.32.jar")
	l1 := layer(t,
		exe("usr/local/bin/app", bins["plain"]),
		exe("usr/local/bin/keep", bins["replaced"]),
		file("app/node_modules/lodash/package.json", lodash),
		file("app/node_modules/minimist/package.json", minimist),
		file("opt/py/PyYAML-6.0.dist-info/METADATA", pyyaml),
		file("srv/lib/slf4j-nop-1.7.32.jar", jar),
		file("etc/os-release", readFile(t, "testdata/debian-12.os-release")),
	)
	l2 := layer(t,
		whiteout("usr/local/bin/app"),                            // a deleted file
		file("app/node_modules/.wh..wh..opq", nil),               // an opaque directory ...
		file("app/node_modules/minimist/package.json", minimist), // ... written again above it
		file("opt/py", []byte("a file replaces the directory\n")),
		whiteout("srv"), // a deleted directory
		dir("etc/os-release/"),
	)
	inv, err := Scan(context.Background(), image(t, l1, l2), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range inv.Packages {
		if p.Name == "stdlib" {
			continue
		}
		layer := "l1"
		if p.Layer == diffID(t, l2) {
			layer = "l2"
		}
		got = append(got, p.Path+" "+p.Name+"@"+p.Version+" "+layer)
	}
	want := []string{
		"/usr/local/bin/keep example.com/replaced@(devel) l1",
		"/usr/local/bin/keep golang.org/x/text@0.3.7 l1",
		"/app/node_modules/minimist/package.json minimist@1.2.5 l2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if inv.OS != nil {
		t.Errorf("os-release replaced by a directory still gives OS %+v", inv.OS)
	}
}

func TestWhiteoutThenRewriteInLaterLayer(t *testing.T) {
	status := []byte("Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13.dfsg-1\nSource: zlib\n")
	l1 := layer(t, file("var/lib/dpkg/status", status))
	l2 := layer(t, whiteout("var/lib/dpkg/status"))
	l3 := layer(t, file("var/lib/dpkg/status", status))
	inv, err := Scan(context.Background(), image(t, l1, l2, l3), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != 1 || inv.Packages[0].Layer != diffID(t, l3) || inv.Packages[0].SourceName != "zlib" ||
		inv.Packages[0].SourceVersion != "1:1.2.13.dfsg-1" {
		t.Errorf("packages: %+v", inv.Packages)
	}
	inv, err = Scan(context.Background(), image(t, l1, l2), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != 0 {
		t.Errorf("deleted status file still gives %+v", inv.Packages)
	}
}

func TestHardLinkAndCancel(t *testing.T) {
	lodash := readFile(t, "testdata/npm/lodash/package.json")
	img := image(t, layer(t,
		file("a/node_modules/lodash/package.json", lodash),
		entry{name: "b/node_modules/lodash/package.json", typ: tar.TypeLink, link: "a/node_modules/lodash/package.json"},
	))
	inv, err := Scan(context.Background(), img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, p := range inv.Packages {
		paths = append(paths, p.Path)
	}
	if diff := cmp.Diff([]string{"/a/node_modules/lodash/package.json", "/b/node_modules/lodash/package.json"}, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Scan(ctx, img, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled scan: %v", err)
	}
}
