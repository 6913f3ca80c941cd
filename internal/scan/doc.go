// Package scan is berth's image scanner pipeline: open the vulnerability
// database and refuse it when stale, open the image (internal/oci), inventory
// its layers (scan/catalog, with the layer cache), match the packages against
// the OSV data (scan/match) and apply the gate (scan/report). The CLI's
// `berth scan` is a thin wrapper around Run.
package scan
