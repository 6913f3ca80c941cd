// Package catalog reads container image layers once, in order, honouring
// whiteouts, and inventories what the final filesystem holds: OS packages
// (dpkg, apk, rpm), Go binaries, npm, Python and Java packages, the OS
// release and hard-coded secrets, each tied to the layer that added it.
package catalog
