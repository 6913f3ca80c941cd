package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// started is a component process launched by this process.
type started struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{} // closed when the process has exited
	err    error         // exit status, valid once exited is closed
	start  uint64        // its start time (see StartTime)
}

// start launches component with args, its output appended to its log file.
// The process gets its own process group, so a terminal's Ctrl-C aimed at
// `berth sandbox up` does not take the cluster down with it. With
// dieWithParent it is killed when this process exits, however it exits
// (see UpOptions.DieWithParent).
func start(name, bin string, args []string, logPath string, dieWithParent bool) (*started, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	fmt.Fprintf(f, "\n==== berth sandbox: starting %s at %s\n", name, time.Now().Format(time.RFC3339))
	// The sandbox outlives the command that starts it, so it must not be
	// tied to a context that ends with that command.
	cmd := exec.Command(bin, args...) //nolint:noctx // long-lived component process, stopped by Down
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if dieWithParent {
		killWithParent(cmd.SysProcAttr)
	}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &started{name: name, cmd: cmd, log: logPath, exited: make(chan struct{}), start: StartTime(cmd.Process.Pid)}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.exited)
	}()
	return p, nil
}

// dead returns an error describing p's exit, or nil while it runs.
func (p *started) dead() error {
	select {
	case <-p.exited:
		return &ComponentError{Component: p.name, Log: p.log, Err: fmt.Errorf("exited during startup: %v", p.err)}
	default:
		return nil
	}
}

// ComponentError names a sandbox component that failed and its log file.
type ComponentError struct {
	Component string
	Log       string
	Err       error
}

func (e *ComponentError) Error() string {
	msg := fmt.Sprintf("sandbox component %s: %v; log: %s", e.Component, e.Err, e.Log)
	if tail := tailFile(e.Log, 12); tail != "" {
		msg += "\nlast lines of the log:\n" + tail
	}
	return msg
}

func (e *ComponentError) Unwrap() error { return e.Err }

// tailFile returns the last n lines of path, or "" if unreadable.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 400 {
			lines[i] = l[:400] + "..."
		}
		lines[i] = "  " + lines[i]
	}
	return strings.Join(lines, "\n")
}

// Running reports whether pid is alive, was started from binary (its
// argv[0]) and, when start is not 0, started at start (see StartTime), so
// a PID recycled by another process, even one of the same binary (another
// agent, a render worker), is never signalled. It holds even when binary
// has since been replaced on disk.
func Running(pid int, binary string, start uint64) bool { return running(pid, binary, start) }

// StartTime returns when process pid started, in clock ticks since boot
// (field 22 of /proc/PID/stat); 0 when it cannot be read. With the PID it
// names one process: the kernel hands a PID out again, never both.
func StartTime(pid int) uint64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start past its last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(stat[i+1:]))
	const startTime = 22 - 3 // field 22, counted from field 3 (state)
	if len(fields) <= startTime {
		return 0
	}
	v, err := strconv.ParseUint(fields[startTime], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

func running(pid int, binary string, start uint64) bool {
	if pid <= 0 {
		return false
	}
	if start != 0 && StartTime(pid) != start {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(cmdline) == 0 {
		return false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// A zombie has exited; it only waits to be reaped.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	argv0 := string(bytes.SplitN(cmdline, []byte{0}, 2)[0])
	return argv0 == binary
}

// FreePorts returns n distinct free TCP ports on loopback.
func FreePorts(n int) ([]int, error) { return freePorts(n) }

// freePorts returns n distinct free TCP ports on loopback. The listeners are
// held until all are chosen so the kernel does not hand out one port twice.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		var lc net.ListenConfig
		l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("choosing a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
