package catalog

import (
	"net/url"
	"strings"
)

// fillEcosystem sets the OSV ecosystem of an OS package from the image's
// OS, and every package's PURL.
func fillEcosystem(p *Package, os *OS) {
	if p.Ecosystem == "" {
		p.Ecosystem = osEcosystem(p.Cataloger, os)
	}
	if p.PURL == "" {
		p.PURL = purl(p, os)
	}
}

// majorMinor returns "3.20" for "3.20.3".
func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		return parts[0] + "." + parts[1]
	}
	return v
}

func major(v string) string {
	m, _, _ := strings.Cut(v, ".")
	return m
}

// osEcosystem names the OSV ecosystem for OS packages found by cataloger on
// os: "Debian:12", "Ubuntu:22.04", "Alpine:v3.20", "Red Hat",
// "Rocky Linux:9", "AlmaLinux:9" ...; without os-release, the family.
func osEcosystem(cataloger string, os *OS) string {
	id, ver := "", ""
	if os != nil {
		id, ver = os.ID, os.VersionID
	}
	withVer := func(name, v string) string {
		if v == "" {
			return name
		}
		return name + ":" + v
	}
	switch cataloger {
	case "dpkg":
		switch id {
		case "ubuntu":
			return ubuntuEcosystem(ver)
		case "debian":
			return withVer("Debian", major(ver))
		}
		return "Debian"
	case "apk":
		switch id {
		case "wolfi":
			return "Wolfi"
		case "chainguard":
			return "Chainguard"
		case "alpine":
			if ver != "" {
				return "Alpine:v" + majorMinor(ver)
			}
		}
		return "Alpine"
	case "rpm":
		switch id {
		case "rhel":
			return "Red Hat"
		case "rocky":
			return withVer("Rocky Linux", major(ver))
		case "almalinux":
			return withVer("AlmaLinux", major(ver))
		case "opensuse-leap", "opensuse-tumbleweed", "opensuse":
			return "openSUSE"
		case "sles", "sle-micro":
			return "SUSE"
		case "mariner":
			return withVer("Mariner", ver)
		case "azurelinux":
			return withVer("Azure Linux", ver)
		case "openEuler", "openeuler":
			return withVer("openEuler", ver)
		case "":
			return "Red Hat"
		}
		if os != nil && os.Name != "" {
			return os.Name
		}
		return "Red Hat"
	}
	return ""
}

// purl builds the package URL (github.com/package-url/purl-spec).
func purl(p *Package, os *OS) string {
	esc := url.PathEscape
	distro := func(typ string) string {
		ns := "unknown"
		q := ""
		if os != nil && os.ID != "" {
			ns = strings.ToLower(os.ID)
			if os.VersionID != "" {
				q = "?distro=" + url.QueryEscape(ns+"-"+os.VersionID)
			}
		}
		return "pkg:" + typ + "/" + ns + "/" + esc(p.Name) + "@" + esc(p.Version) + q
	}
	switch p.Cataloger {
	case "dpkg":
		return distro("deb")
	case "apk":
		return distro("apk")
	case "rpm":
		return distro("rpm")
	case "gobinary":
		v := p.Version
		if v != "" && v != "(devel)" {
			v = "v" + v
		}
		return "pkg:golang/" + p.Name + "@" + esc(v)
	case "npm":
		name := p.Name
		if strings.HasPrefix(name, "@") {
			name = "%40" + strings.TrimPrefix(name, "@")
		}
		return "pkg:npm/" + name + "@" + esc(p.Version)
	case "python":
		n := strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(p.Name))
		return "pkg:pypi/" + esc(n) + "@" + esc(p.Version)
	case "java":
		g, a, _ := strings.Cut(p.Name, ":")
		return "pkg:maven/" + esc(g) + "/" + esc(a) + "@" + esc(p.Version)
	}
	return ""
}

// ubuntuEcosystem names Ubuntu releases as OSV does: LTS releases (even
// years' .04) carry ":LTS", "Ubuntu:22.04:LTS"; others are "Ubuntu:24.10".
func ubuntuEcosystem(ver string) string {
	if ver == "" {
		return "Ubuntu"
	}
	year, month, ok := strings.Cut(ver, ".")
	if ok && month == "04" && len(year) == 2 && (year[1]-'0')%2 == 0 {
		return "Ubuntu:" + ver + ":LTS"
	}
	return "Ubuntu:" + ver
}
