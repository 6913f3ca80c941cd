// Package examples embeds the example GitOps repository that `berth up`
// pushes to its local Git server: a plain-YAML app, a Kustomize app with
// staging and production overlays, and a Helm chart with per-environment
// values.
package examples

import "embed"

// Repo holds the example repository's files (this directory without Go files).
//
//go:embed README.md guestbook shop hello-chart
var Repo embed.FS
