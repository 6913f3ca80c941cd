// Package vulndbtest gives tests real vulnerability data: the OSV entries of
// golang.org/x/vulndb, fetched from the Go module proxy with `go mod
// download`, and stores imported from them.
package vulndbtest
