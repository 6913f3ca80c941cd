package catalog

import (
	"archive/zip"
	"bufio"
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// goBinaryPackages reads a Go binary's build information the way
// govulncheck and osv-scanner do: the main module, every dependency (a
// replacement wins over the module it replaces) and the standard library as
// "stdlib" at the toolchain's version. Versions lose their "v" prefix, as in
// OSV data. Anything that is not a Go binary gives nothing.
func goBinaryPackages(content []byte) []Package {
	bi, err := buildinfo.Read(bytes.NewReader(content))
	if err != nil {
		return nil
	}
	var pkgs []Package
	add := func(path, version string) {
		pkgs = append(pkgs, Package{Name: path, Version: strings.TrimPrefix(version, "v"), Ecosystem: "Go", Cataloger: "gobinary"})
	}
	if bi.Main.Path != "" {
		add(bi.Main.Path, bi.Main.Version)
	}
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		if m.Version == "" {
			continue // replaced by a local directory: no published version
		}
		add(m.Path, m.Version)
	}
	if f := strings.Fields(bi.GoVersion); len(f) > 0 && strings.HasPrefix(f[0], "go1") {
		add("stdlib", strings.TrimPrefix(f[0], "go"))
	}
	return pkgs
}

// parseNpm reads a package.json under node_modules.
func parseNpm(content []byte) ([]Package, error) {
	var m struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(content, &m); err != nil {
		return nil, fmt.Errorf("parsing package.json: %w", err)
	}
	if m.Name == "" || m.Version == "" {
		return nil, nil
	}
	return []Package{{Name: m.Name, Version: m.Version, Ecosystem: "npm", Cataloger: "npm"}}, nil
}

// parsePython reads the header of a wheel's METADATA or an egg's PKG-INFO.
func parsePython(content []byte) ([]Package, error) {
	var name, version string
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break // end of the header
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "name":
			name = strings.TrimSpace(v)
		case "version":
			version = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parsing python metadata: %w", err)
	}
	if name == "" || version == "" {
		return nil, nil
	}
	return []Package{{Name: name, Version: version, Ecosystem: "PyPI", Cataloger: "python"}}, nil
}

// maxJarDepth bounds how deep jars nested in jars are opened, and
// maxNestedJar how large a nested jar may be.
const (
	maxJarDepth  = 2
	maxNestedJar = 64 << 20
)

// parseJar reads META-INF/maven/**/pom.properties in a jar (or war, ear),
// and in the jars nested in it, to a bounded depth and size.
func parseJar(content []byte, maxSize int64, depth int) ([]Package, error) {
	zr, err := zip.NewReader(bytes.NewReader(content), int64(len(content)))
	if err != nil {
		return nil, fmt.Errorf("opening jar: %w", err)
	}
	var (
		pkgs []Package
		errs []string
	)
	for _, f := range zr.File {
		switch {
		case strings.HasPrefix(f.Name, "META-INF/maven/") && strings.HasSuffix(f.Name, "/pom.properties"):
			data, err := readZipFile(f, 64<<10)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			if p, ok := parsePomProperties(data); ok {
				pkgs = append(pkgs, p)
			}
		case strings.HasSuffix(f.Name, ".jar") && depth < maxJarDepth:
			data, err := readZipFile(f, min(maxSize, maxNestedJar))
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			nested, err := parseJar(data, maxSize, depth+1)
			if err != nil {
				errs = append(errs, f.Name+": "+err.Error())
			}
			pkgs = append(pkgs, nested...)
		}
	}
	if len(errs) > 0 {
		return pkgs, fmt.Errorf("reading jar: %s", strings.Join(errs, "; "))
	}
	return pkgs, nil
}

func readZipFile(f *zip.File, limit int64) ([]byte, error) {
	if f.FileInfo().Size() > limit || f.FileInfo().Size() < 0 {
		return nil, fmt.Errorf("%s: over the %d-byte limit", f.Name, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	defer func() { _ = rc.Close() }()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: over the %d-byte limit", f.Name, limit)
	}
	return data, nil
}

func parsePomProperties(data []byte) (Package, bool) {
	vals := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			vals[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	g, a, v := vals["groupId"], vals["artifactId"], vals["version"]
	if g == "" || a == "" || v == "" {
		return Package{}, false
	}
	return Package{Name: g + ":" + a, Version: v, Ecosystem: "Maven", Cataloger: "java"}, true
}
