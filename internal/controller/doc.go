// Package controller holds berth's reconcilers, one package per kind.
//
// The agent is a controller-runtime manager running in the cluster. For each
// Application it pulls a snapshot of one Git commit (package source, one
// fetch per repository and commit shared by every Application), renders it
// (package render: plain YAML, Kustomize or Helm; charts and overlays in
// child processes that package renderworker stops at a memory or time
// limit), validates the whole
// revision with a strict server-side dry-run and applies it in stages
// (package apply, the only owner of server-side apply) as the Application's
// service account, prunes what Git no longer holds, and reports health
// computed by kstatus. Helm charts become real Helm releases (package
// helmrelease).
//
// A reconcile is one pass of that pipeline and always ends in a typed
// outcome: Ready with the applied revision; Stalled with the reason when a
// revision is rejected (the last good state keeps running and Git keeps
// being polled); a returned error for transient failures (backoff); or a
// RequeueAfter while waiting for health or the next poll. Watches on owned
// objects (metadata-only, selected by berth's ownership labels) bring the
// Application back within seconds of a manual change, so drift is healed or
// reported, and a webhook receiver triggers an immediate fetch. A deleted
// Application is held by berth's finalizer until what it applied is
// pruned (or kept, when it is suspended, has prune off, or its account
// may no longer delete).
package controller
