// Package render turns a snapshot directory and an Application's rendering
// options into Kubernetes objects, the same way in the agent and in the CLI
// (`berth render`, `berth check`).
//
// The renderer is detected from the directory: Chart.yaml means Helm (the
// Helm v4 SDK, rendered client-side here; the agent installs the same chart
// as a real Helm release), kustomization.yaml (or .yml, or Kustomization)
// means Kustomize (sigs.k8s.io/kustomize/api, remote bases refused unless
// allowed), anything else is a directory of YAML read recursively.
//
// Every error names the file (and line, where known) that must be fixed.
package render
