// Package catalog reads container image layers once, in order, honouring
// whiteouts, and inventories what the final filesystem holds: OS packages
// (dpkg, apk, rpm), Go binaries, npm, Python and Java packages, the OS
// release and hard-coded secrets, each tied to the layer that added it.
//
// Scan works in two steps. Each layer is streamed once through a tar reader
// and reduced to a layer record: the paths it writes and deletes (whiteouts,
// opaque directories), its symlinks, and what the catalogers found in the
// files they want (only those files are read into memory, within size
// limits). A record depends on that layer alone, so it is cached by diff ID
// and cataloger version (package cache) and a rescan reads no cached layer.
// The records are then laid over one another bottom-up to give the final
// view, where ecosystems that depend on the OS ("Debian:12") are filled in.
//
// Package.Ecosystem uses OSV's ecosystem names; Go binaries yield their main
// module, dependencies (replacements honoured) and "stdlib", versions without
// the "v" prefix, as in OSV data. Secrets come from the shared detector in
// package secretscan and are only ever stored redacted.
//
// Hostile layers are expected: entries with absolute or ".." paths are
// skipped with a warning, symlinks are resolved with a hop limit, files over
// the size limit are skipped with a warning, and a layer that decompresses
// past its limit (absolute, or a ratio to its compressed size) stops the scan
// with ErrLayerTooLarge. Scan writes nothing to disk except the cache
// directory (and, without one, a short-lived temporary copy of an rpm
// database, which the pure-Go reader needs as a file).
package catalog
