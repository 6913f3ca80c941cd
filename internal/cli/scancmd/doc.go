// Package scancmd is the command line of the image scanner: `scan IMAGE`
// and `db import|status`. berth mounts these commands in its own tree;
// berth-scan (cmd/berth-scan) is this tree alone, for CI images, and links
// no Kubernetes client, Helm or controller code, so it starts in a few
// milliseconds instead of berth's tens (see docs/scan.md#performance).
package scancmd
