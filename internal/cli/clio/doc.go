// Package clio holds what every berth command tree shares and nothing
// else: the standard streams, the error that carries an exit code, and the
// function that runs a tree and turns its error into an exit code. It is a
// leaf package so that berth-scan, the scanner alone, links no Kubernetes
// code.
package clio
