package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
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
	p := &started{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
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

// Running reports whether pid is alive and was started from binary (its
// argv[0]), so a PID recycled by an unrelated process is never signalled.
// It holds even when binary has since been replaced on disk.
func Running(pid int, binary string) bool { return running(pid, binary) }

func running(pid int, binary string) bool {
	if pid <= 0 {
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
