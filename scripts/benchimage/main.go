// Command benchimage writes the images that scripts/bench-scan.sh scans, as
// OCI layouts and docker-save tarballs, from files on this machine:
//
//   - small (~10 MB compressed): Debian's os-release and this machine's real
//     dpkg status database, a Go program built against module versions with
//     known advisories and one more Go binary (-small-bin);
//   - large (~300 MB): the same base plus the Go toolchain's binaries, the
//     other Go binaries given with -bin, npm's real node_modules tree, real
//     Python dist-info metadata and package.json files for the npm packages
//     named in -npm-list (NAME<TAB>VERSION lines), to reach thousands of
//     packages.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	out := flag.String("out", "", "output directory (writes small/, large/, small.tar, large.tar)")
	vulnApp := flag.String("app", "", "the Go program built against vulnerable modules")
	smallBin := flag.String("small-bin", "", "a second Go binary for the small image")
	bins := flag.String("bin", "", "comma-separated extra Go binaries for the large image")
	npmList := flag.String("npm-list", "", "file of NAME<TAB>VERSION lines for synthetic package.json files")
	npmCount := flag.Int("npm-count", 3000, "how many lines of -npm-list to use")
	goroot := flag.String("goroot", "", "GOROOT whose bin/ and pkg/tool/ go into the large image")
	flag.Parse()
	if *out == "" || *vulnApp == "" {
		log.Fatal("-out and -app are required")
	}
	base := layer(func(a *adder) {
		a.file("etc/os-release", mustRead("/etc/os-release"), 0o644)
		a.file("var/lib/dpkg/status", mustRead("/var/lib/dpkg/status"), 0o644)
	})
	app := layer(func(a *adder) {
		a.file("app/server", mustRead(*vulnApp), 0o755)
		if *smallBin != "" {
			a.file("app/"+filepath.Base(*smallBin), mustRead(*smallBin), 0o755)
		}
	})
	write(*out, "small", base, app)

	tools := layer(func(a *adder) {
		if *goroot != "" {
			a.tree(filepath.Join(*goroot, "bin"), "usr/local/go/bin", func(string) bool { return true })
			a.tree(filepath.Join(*goroot, "pkg", "tool"), "usr/local/go/pkg/tool", func(string) bool { return true })
		}
		for i, b := range strings.Split(*bins, ",") {
			if b != "" {
				a.file(fmt.Sprintf("usr/local/bin/%d-%s", i, filepath.Base(b)), mustRead(b), 0o755)
			}
		}
	})
	langs := layer(func(a *adder) {
		a.tree("/usr/lib/node_modules/npm", "usr/lib/node_modules/npm", func(string) bool { return true })
		a.tree("/usr/lib/python3/dist-packages", "usr/lib/python3/dist-packages", func(p string) bool {
			return strings.Contains(p, ".dist-info/") || strings.Contains(p, ".egg-info")
		})
		if *npmList != "" {
			f, err := os.Open(*npmList)
			if err != nil {
				log.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			n := 0
			for sc.Scan() && n < *npmCount {
				fields := strings.Split(sc.Text(), "\t")
				if len(fields) < 2 || fields[0] == "name" || fields[1] == "" ||
					strings.Contains(fields[0], "..") || strings.HasPrefix(fields[0], ".") || strings.ContainsAny(fields[0], " \\") {
					continue
				}
				body := fmt.Sprintf(`{"name":%q,"version":%q}`, fields[0], fields[1])
				a.file("srv/app/node_modules/"+fields[0]+"/package.json", []byte(body), 0o644)
				n++
			}
		}
	})
	write(*out, "large", base, app, tools, langs)
}

type adder struct{ tw *tar.Writer }

func (a *adder) file(p string, data []byte, mode int64) {
	if err := a.tw.WriteHeader(&tar.Header{Name: p, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		log.Fatal(err)
	}
	if _, err := a.tw.Write(data); err != nil {
		log.Fatal(err)
	}
}

// tree adds the regular files under src whose relative path keep accepts.
func (a *adder) tree(src, dst string, keep func(string) bool) {
	_ = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		if !keep(rel) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		a.file(dst+"/"+filepath.ToSlash(rel), mustRead(p), int64(fi.Mode().Perm()))
		return nil
	})
}

func layer(fill func(*adder)) v1.Layer {
	var buf bytes.Buffer
	a := &adder{tw: tar.NewWriter(&buf)}
	fill(a)
	if err := a.tw.Close(); err != nil {
		log.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		log.Fatal(err)
	}
	return l
}

func write(out, name string, layers ...v1.Layer) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err == nil {
		cf := mustConfig(img).DeepCopy()
		cf.OS, cf.Architecture = "linux", "amd64"
		img, err = mutate.ConfigFile(img, cf)
	}
	if err != nil {
		log.Fatal(err)
	}
	dir := filepath.Join(out, name)
	_ = os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		log.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		log.Fatal(err)
	}
	tag, err := nameTag("bench/" + name + ":latest")
	if err != nil {
		log.Fatal(err)
	}
	if err := tarball.WriteToFile(filepath.Join(out, name+".tar"), tag, img); err != nil {
		log.Fatal(err)
	}
}

func nameTag(s string) (name.Tag, error) { return name.NewTag(s) }

func mustRead(p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		log.Fatal(err)
	}
	return b
}

func mustConfig(img v1.Image) *v1.ConfigFile {
	cf, err := img.ConfigFile()
	if err != nil || cf == nil {
		return &v1.ConfigFile{}
	}
	return cf
}
