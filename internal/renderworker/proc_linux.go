package renderworker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// anonymousMemory is the process's anonymous resident memory (RssAnon),
// in bytes: what it allocated itself, without the pages of the binary it
// shares with the agent.
func anonymousMemory(pid int) (int64, error) { return statusField(pid, "RssAnon:") }

// statusField reads a size (in kB there) from /proc/PID/status, in bytes.
func statusField(pid int, name string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		f := bytes.Fields(s.Bytes())
		if len(f) >= 2 && string(f[0]) == name {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no " + name + " in /proc status")
}

// setParentDeathSignal has the kernel kill the worker when the agent ends,
// even in the middle of a render. Linux sends it when the thread that
// started the worker ends, not only the process: the Go runtime does not
// end its threads unless a goroutine locked to one exits, which berth's
// code does not do; a worker ended that way fails its render as a crash,
// or, idle, is replaced.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// limitData sets RLIMIT_DATA to what this process has mapped now (the Go
// runtime's start: some 130 MB for berth) plus $BERTH_RENDER_DATA_LIMIT
// bytes, if that is set.
func limitData() error {
	v := os.Getenv(DataLimitEnv)
	if v == "" {
		return nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", DataLimitEnv, v, err)
	}
	base, err := statusField(os.Getpid(), "VmData:")
	if err != nil {
		return err
	}
	if base > 0 {
		n += uint64(base)
	}
	return syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: n, Max: n})
}

// protocolOutput moves the real stdout to a descriptor of its own, for
// the protocol, and points descriptor 1 at stderr.
func protocolOutput() (*os.File, error) {
	fd, err := syscall.Dup(1)
	if err != nil {
		return nil, fmt.Errorf("keeping stdout for the protocol: %w", err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.Dup3(2, 1, 0); err != nil {
		return nil, fmt.Errorf("pointing stdout at stderr: %w", err)
	}
	return os.NewFile(uintptr(fd), "protocol"), nil
}
