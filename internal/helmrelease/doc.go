// Package helmrelease installs and upgrades charts as real Helm releases
// through the Helm v4 SDK, so `helm list` and `helm history` in the
// destination namespace tell the same story as berth. Releases are stored
// the way the helm CLI stores them (Secrets driver) and every call runs with
// the caller's (impersonated) rest.Config. Uninstall runs a release's
// delete hooks around the caller's own deletion of its objects; likewise
// Upgrade and Rollback leave what a release no longer holds to the
// caller's prune, whose rules keep data (Helm would delete it).
package helmrelease
