// Package audit inspects a live cluster for what the manifest gates in
// package policy cannot see: who can write where (RBAC), and how the
// cluster itself is hardened (Cluster: Secrets encrypted at rest,
// anonymous authentication, the agent's own RBAC footprint).
//
// Every answer says how it was reached. When a fact cannot be checked — no
// etcd access and no visible apiserver configuration, say — the answer is
// Unknown with the reason, never a guess.
//
// The CLI wraps it as `berth audit rbac` and `berth audit cluster`; see
// docs/policy.md.
package audit
