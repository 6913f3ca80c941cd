// Package config embeds berth's generated Kubernetes manifests (the CRDs
// under crd/, produced by controller-gen from api/v1alpha1) so the binary
// can install them (`berth install`, `berth up`) without the source tree.
package config

import "embed"

// CRDs holds the CustomResourceDefinitions, one YAML file each.
//
//go:embed crd/*.yaml
var CRDs embed.FS
