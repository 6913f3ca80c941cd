// Package scantest builds real inputs for scanner tests: Go binaries compiled
// against module versions that have known advisories, their build
// information as catalog packages, and small OCI images holding them.
package scantest
