// Package vulndb is berth's local vulnerability database in OSV format.
//
// Import reads OSV records from a single .json file, a directory tree of
// .json files or one of the per-ecosystem all.zip archives that OSV
// publishes, and writes them into a store directory: one gob file per
// ecosystem keyed by package name, plus meta.json with where the data came
// from, when it was imported and how many records it holds. A scan opens the
// store and loads only the ecosystems its packages need, so opening is cheap.
//
// Hostile input is expected: records that do not parse are skipped and
// counted as warnings, archive members are size-bounded and never written to
// disk by their own name, and the store is replaced atomically.
package vulndb
