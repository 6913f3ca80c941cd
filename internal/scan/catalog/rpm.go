package catalog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	rpmdb "github.com/erikvarga/go-rpmdb/pkg"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver the rpm reader opens (RHEL 9 style databases)
)

// tempRoot is where catalogers that need a real file (the rpm database
// reader) put it: inside the cache directory when there is one, so a scan
// writes nowhere else; the system temporary directory otherwise.
func (o Options) tempRoot() string {
	if o.CacheDir == "" {
		return ""
	}
	return filepath.Join(o.CacheDir, "tmp")
}

// parseRpm reads an rpm database (Berkeley DB, NDB or SQLite) with a pure-Go
// reader. The reader needs a file, so the content is written to a private
// temporary directory that is removed before returning.
func parseRpm(ctx context.Context, base string, content []byte, tmpRoot string) (pkgs []Package, err error) {
	if tmpRoot != "" {
		if err := os.MkdirAll(tmpRoot, 0o700); err != nil {
			return nil, fmt.Errorf("reading rpm database: %w", err)
		}
	}
	dir, err := os.MkdirTemp(tmpRoot, "rpmdb-")
	if err != nil {
		return nil, fmt.Errorf("reading rpm database: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	file := filepath.Join(dir, base)
	if err := os.WriteFile(file, content, 0o600); err != nil {
		return nil, fmt.Errorf("reading rpm database: %w", err)
	}
	// The reader parses untrusted bytes; a bug there must not end the scan.
	defer func() {
		if r := recover(); r != nil {
			pkgs, err = nil, fmt.Errorf("reading rpm database: malformed database (%v)", r)
		}
	}()
	db, err := rpmdb.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading rpm database: %w", err)
	}
	defer func() { _ = db.Close() }()
	infos, err := db.ListPackagesWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading rpm database: %w", err)
	}
	for _, in := range infos {
		if in.Name == "" || in.Name == "gpg-pubkey" {
			continue
		}
		v := in.Version
		if in.Release != "" {
			v += "-" + in.Release
		}
		if in.Epoch != nil && *in.Epoch != 0 {
			v = fmt.Sprintf("%d:%s", *in.Epoch, v)
		}
		p := Package{Name: in.Name, Version: v, Cataloger: "rpm"}
		if src := sourceRPMName(in.SourceRpm); src != "" {
			p.SourceName = src
			p.SourceVersion = v
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// sourceRPMName turns "openssl-3.0.7-24.el9.src.rpm" into "openssl".
func sourceRPMName(s string) string {
	s = strings.TrimSuffix(s, ".src.rpm")
	for range 2 {
		i := strings.LastIndex(s, "-")
		if i <= 0 {
			return ""
		}
		s = s[:i]
	}
	return s
}
