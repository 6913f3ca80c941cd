package sandbox

import "syscall"

// killWithParent has the kernel send SIGKILL to the process when the
// thread that started it ends, which, for a Go program that does not lock
// threads, is when the program exits.
func killWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
