// Package release records every sync that reaches the cluster as an
// immutable, numbered Release of its Application — commit, rendered
// manifests (gzip, split into Secrets well below the 1 MiB object limit, so
// a rollback needs no Git), images by digest, trigger and outcome — keeps a
// bounded history, and reads a release's manifests back after checking
// them against their recorded digest.
//
// The reconciler drives the state machine (create → Healthy | Failed →
// RolledBack | Superseded) and the rollbacks; this package only stores.
package release
