// Package scantest builds real inputs for scanner tests: Go binaries compiled
// against module versions that have known advisories.
package scantest
