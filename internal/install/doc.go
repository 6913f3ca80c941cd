// Package install produces the manifests that install berth's agent in a
// cluster — its namespace, the CRDs, a least-privilege ServiceAccount and
// RBAC, the Deployment and the webhook Service — applies them, and
// uninstalls berth again (Uninstall), keeping what Applications applied.
//
// The agent's own RBAC is deliberately narrow: it reads Applications and
// writes their status, gets the Secrets that hold Git credentials by name,
// records events, holds its leader-election Lease, and impersonates
// service accounts. It can neither read nor write workloads, and cannot
// list Secrets: every write, and every read of what an Application owns
// (drift watches, health, dry runs), happens as the Application's own
// service account, so a namespace's RBAC decides what its Applications
// may change and what the agent sees there.
package install
