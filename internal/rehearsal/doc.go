// Package rehearsal runs a full rollback drill of an Application in a
// scratch namespace: deploy an earlier release, upgrade to a later one,
// roll back again, each step applied, pruned and waited on until healthy,
// then delete the scratch namespace. It is what `berth rehearse` runs, so
// CI can prove on every change that the way back works, beyond the
// agent's own rehearsal (a server-side dry-run of the previous release,
// see package release and docs/releases.md).
//
// The releases come from their Release records (package release), checked
// against their recorded digest. Every namespaced object of the
// Application's destination namespace is rewritten into the scratch
// namespace; cluster-scoped objects and objects of other namespaces cannot
// be isolated and are only checked with a server-side dry-run. Writes go
// through apply.Manager, as the agent's do, impersonating the
// Application's service account when the caller may (see identity.go).
package rehearsal
