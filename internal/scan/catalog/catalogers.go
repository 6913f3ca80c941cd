package catalog

import (
	"path"
	"strings"

	"github.com/berth-dev/berth/internal/secretscan"
)

// fileKind says which cataloger reads a file, decided from its path.
type fileKind int

const (
	kindNone fileKind = iota
	kindOSRelease
	kindDpkg
	kindApk
	kindRpm
	kindNpm
	kindPython
	kindJava
)

// rpmDatabases are where rpm keeps its database: Berkeley DB (Packages),
// NDB (Packages.db) and SQLite (rpmdb.sqlite), old and new locations.
var rpmDatabases = map[string]bool{
	"var/lib/rpm/Packages":               true,
	"var/lib/rpm/Packages.db":            true,
	"var/lib/rpm/rpmdb.sqlite":           true,
	"usr/lib/sysimage/rpm/Packages":      true,
	"usr/lib/sysimage/rpm/Packages.db":   true,
	"usr/lib/sysimage/rpm/rpmdb.sqlite":  true,
	"usr/share/rpm/Packages":             true,
	"usr/share/rpm/rpmdb.sqlite":         true,
	"usr/lib/sysimage/rpm/rpmdb.sqlite3": true,
}

// kindOf picks the cataloger for the file at p (relative to the root).
func kindOf(p string) fileKind {
	dir, base := path.Split(p)
	switch {
	case p == "etc/os-release" || p == "usr/lib/os-release":
		return kindOSRelease
	case p == "var/lib/dpkg/status":
		return kindDpkg
	case dir == "var/lib/dpkg/status.d/" && !strings.Contains(base, "."):
		// distroless: one status paragraph per file; NAME.md5sums are not.
		return kindDpkg
	case p == "lib/apk/db/installed":
		return kindApk
	case rpmDatabases[p]:
		return kindRpm
	case base == "package.json" && isNodeModule(dir):
		return kindNpm
	case base == "METADATA" && strings.HasSuffix(dir, ".dist-info/"),
		base == "PKG-INFO" && strings.HasSuffix(dir, ".egg-info/"),
		strings.HasSuffix(base, ".egg-info"):
		return kindPython
	}
	switch path.Ext(base) {
	case ".jar", ".war", ".ear", ".hpi", ".jpi":
		return kindJava
	}
	return kindNone
}

// isNodeModule reports whether dir is a package's own directory under
// node_modules ("node_modules/NAME/" or "node_modules/@SCOPE/NAME/"), not a
// directory inside one (test fixtures, nested examples).
func isNodeModule(dir string) bool {
	i := strings.LastIndex("/"+dir, "/node_modules/")
	if i < 0 {
		return false
	}
	rest := strings.TrimSuffix(("/" + dir)[i+len("/node_modules/"):], "/")
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 1:
		return parts[0] != "" && !strings.HasPrefix(parts[0], ".")
	case len(parts) == 2:
		return strings.HasPrefix(parts[0], "@") && parts[1] != ""
	}
	return false
}

// catalog runs the cataloger for kind over one file's content.
func (w *walker) catalog(kind fileKind, fr *fileRecord, content []byte) error {
	var (
		pkgs []Package
		err  error
	)
	switch kind {
	case kindOSRelease:
		fr.OS = parseOSRelease(content)
	case kindDpkg:
		pkgs, err = parseDpkg(content)
	case kindApk:
		pkgs, err = parseApk(content)
	case kindRpm:
		pkgs, err = parseRpm(w.ctx, path.Base(fr.Path), content, w.opts.tempRoot())
	case kindNpm:
		pkgs, err = parseNpm(content)
	case kindPython:
		pkgs, err = parsePython(content)
	case kindJava:
		pkgs, err = parseJar(content, w.opts.MaxFileSize, 0)
	}
	fr.Packages = append(fr.Packages, pkgs...)
	return err
}

// noSecretDirs hold documentation and data where secret rules mostly match
// examples; the secret scan skips them.
var noSecretDirs = []string{
	"usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/",
	"usr/share/i18n/", "usr/share/zoneinfo/", "usr/share/common-licenses/",
	"var/lib/dpkg/", "lib/apk/db/", "var/lib/rpm/", "usr/lib/sysimage/rpm/",
	"etc/ssl/certs/", "usr/share/ca-certificates/",
}

func skipSecrets(p string) bool {
	for _, d := range noSecretDirs {
		if strings.HasPrefix(p, d) {
			return true
		}
	}
	return false
}

// findSecrets runs the shared secret detector over one file.
func findSecrets(p string, content []byte) []Secret {
	var out []Secret
	for _, f := range secretscan.Scan("/"+p, content) {
		out = append(out, Secret{
			RuleID:      f.RuleID,
			Description: f.Description,
			Line:        f.Line,
			Redacted:    f.Redacted,
		})
	}
	return out
}
