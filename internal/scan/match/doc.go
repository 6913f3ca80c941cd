// Package match finds the vulnerabilities that affect catalogued packages.
//
// It follows the OSV schema: an advisory's affected entry applies when its
// ecosystem names the package's (a release suffix such as "Debian:12" must
// agree when both sides carry one), and the version falls in a SEMVER or
// ECOSYSTEM range (introduced / fixed / last_affected / limit events) or is
// listed in versions. Versions are compared with each ecosystem's own rules
// by osv-scalibr's semantic package. GIT ranges are skipped: a package
// carries a version, not a commit.
//
// Severity is computed, not copied: CVSS v4, v3.x and v2 base scores are
// calculated from their vectors; a severity word published by the ecosystem
// itself (GHSA severity, Debian urgency, Ubuntu priority) is preferred when
// present, and malicious-package advisories (MAL-) are always CRITICAL.
package match
