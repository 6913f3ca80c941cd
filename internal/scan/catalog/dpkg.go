package catalog

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// parseDpkg reads a dpkg status file (or one distroless status.d entry):
// paragraphs of "Field: value" lines separated by blank lines. Packages
// whose Status is not "... installed" are left out; each package carries its
// source package (Source field, or itself), which Debian advisories use.
func parseDpkg(content []byte) ([]Package, error) {
	var (
		pkgs   []Package
		fields = map[string]string{}
	)
	flush := func() {
		defer clear(fields)
		name, version := fields["Package"], fields["Version"]
		if name == "" || version == "" {
			return
		}
		if st := fields["Status"]; st != "" && !strings.HasSuffix(st, " installed") {
			return
		}
		p := Package{Name: name, Version: version, Cataloger: "dpkg", SourceName: name, SourceVersion: version}
		if src := fields["Source"]; src != "" {
			n, v, ok := strings.Cut(src, " ")
			p.SourceName = n
			if ok {
				p.SourceVersion = strings.Trim(strings.TrimSpace(v), "()")
			}
		}
		pkgs = append(pkgs, p)
	}
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a multi-line field
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return pkgs, fmt.Errorf("parsing dpkg status: %w", err)
	}
	flush()
	return pkgs, nil
}

// parseApk reads Alpine's /lib/apk/db/installed: paragraphs of "X:value"
// lines; P name, V version, o origin (the source package Alpine's
// advisories use).
func parseApk(content []byte) ([]Package, error) {
	var (
		pkgs []Package
		cur  Package
	)
	flush := func() {
		if cur.Name != "" && cur.Version != "" {
			if cur.SourceName == "" {
				cur.SourceName = cur.Name
			}
			cur.SourceVersion = cur.Version
			cur.Cataloger = "apk"
			pkgs = append(pkgs, cur)
		}
		cur = Package{}
	}
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			continue
		}
		switch line[0] {
		case 'P':
			cur.Name = line[2:]
		case 'V':
			cur.Version = line[2:]
		case 'o':
			cur.SourceName = line[2:]
		}
	}
	if err := sc.Err(); err != nil {
		return pkgs, fmt.Errorf("parsing apk database: %w", err)
	}
	flush()
	return pkgs, nil
}
