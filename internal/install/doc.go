// Package install produces the manifests that install berth's agent in a
// cluster — its namespace, the CRDs, a least-privilege ServiceAccount and
// RBAC, the Deployment and the webhook Service — and applies them.
//
// The agent's own RBAC is deliberately narrow: it reads Applications and
// writes their status, reads the Secrets that hold Git credentials, records
// events, holds its leader-election Lease, watches the objects it manages
// (read-only), and impersonates service accounts. It has no write access to
// workloads at all: every write happens as the Application's own service
// account, so a namespace's RBAC decides what its Applications may change.
package install
