// Package manifest reads Kubernetes objects from YAML and JSON files and
// remembers where each came from (file and line), so every later error —
// a schema violation, a policy finding, a failed dry-run — can name the file
// and line a user must fix.
//
// It is the common currency of the render, policy and apply packages: a
// rendered revision is a []Object.
package manifest
