//go:build !linux

package sandbox

import "syscall"

// killWithParent is Linux only: elsewhere the components outlive a
// process that dies without calling Down.
func killWithParent(*syscall.SysProcAttr) {}
