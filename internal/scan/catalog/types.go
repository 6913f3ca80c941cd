package catalog

// Package is one software package found in an image, tied to the layer that
// added it.
type Package struct {
	// Name and Version as the ecosystem spells them.
	Name    string `json:"name"`
	Version string `json:"version"`
	// Ecosystem is the OSV ecosystem: "Debian:12", "Alpine:v3.20", "Red Hat",
	// "Go", "npm", "PyPI", "Maven".
	Ecosystem string `json:"ecosystem"`
	// SourceName and SourceVersion are the source package where advisories
	// use it (Debian, Alpine); empty otherwise.
	SourceName    string `json:"sourceName,omitempty"`
	SourceVersion string `json:"sourceVersion,omitempty"`
	// PURL is the package URL.
	PURL string `json:"purl,omitempty"`
	// Cataloger names what found it: dpkg, apk, rpm, gobinary, npm, python, java.
	Cataloger string `json:"cataloger"`
	// Path is the file the package was read from (the dpkg status file, the
	// Go binary, the package.json ...), absolute inside the image.
	Path string `json:"path"`
	// Layer is the diff ID (sha256:...) of the layer that added Path.
	Layer string `json:"layer"`
}

// OS is the distribution read from /etc/os-release (or /usr/lib/os-release).
type OS struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	VersionID string `json:"versionId"`
	Codename  string `json:"codename,omitempty"`
}

// Secret is a hard-coded secret found in an image file. Match is redacted:
// the secret itself is never stored, logged or printed.
type Secret struct {
	RuleID      string `json:"ruleId"`
	Description string `json:"description,omitempty"`
	Path        string `json:"path"`
	Layer       string `json:"layer"`
	Line        int    `json:"line,omitempty"`
	Redacted    string `json:"redacted"`
}

// Inventory is everything the catalogers found in one image.
type Inventory struct {
	// Image is the reference or path that was scanned; Digest its manifest
	// digest when known.
	Image  string `json:"image"`
	Digest string `json:"digest,omitempty"`
	// Layers are the diff IDs, bottom first.
	Layers   []string  `json:"layers"`
	OS       *OS       `json:"os,omitempty"`
	Packages []Package `json:"packages"`
	Secrets  []Secret  `json:"secrets"`
	// Warnings are files that were skipped and why (hostile or unreadable input).
	Warnings []string `json:"warnings,omitempty"`
}
