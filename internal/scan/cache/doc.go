// Package cache is the image scanner's on-disk layer cache: one JSON file per
// key (a layer's diff ID plus the cataloger version) holding that layer's
// partial results, so a rescan of an image whose layers are all cached reads
// no layer.
//
// Writes go to a temporary file in the cache directory and are renamed into
// place, so concurrent scans (in one process or several) never see a partial
// entry; the last writer wins with identical content. Keys are restricted to
// a safe alphabet, so no entry is ever written outside the directory.
package cache
