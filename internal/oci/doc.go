// Package oci opens container images for berth's image scanner and other
// registry work: a registry reference (go-containerregistry's remote, with
// credentials from the Docker config or given explicitly), an OCI image
// layout directory, or a `docker save` tarball. Open tells them apart and
// returns a v1.Image whose layers are read lazily.
package oci
