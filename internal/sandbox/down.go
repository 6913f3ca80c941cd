package sandbox

import (
	"context"
	"fmt"
	"sort"
	"syscall"
	"time"
)

type namedProcess struct {
	name string
	Process
}

// components returns the recorded processes in reverse start order, so
// dependents stop before what they depend on.
func (s *State) components() []namedProcess {
	var out []namedProcess
	for i := len(Components) - 1; i >= 0; i-- {
		if p, ok := s.Processes[Components[i]]; ok {
			out = append(out, namedProcess{Components[i], p})
		}
	}
	// Components unknown to this version (from a newer berth) last.
	var extra []string
	for name := range s.Processes {
		known := false
		for _, c := range Components {
			known = known || c == name
		}
		if !known {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		out = append(out, namedProcess{name, s.Processes[name]})
	}
	return out
}

// Down stops the processes the sandbox in dir started, by PID, and nothing
// else: a PID that no longer runs the recorded binary is left alone. Files in
// the state directory are kept, so a later Up resumes the same cluster. It
// returns the names of the components it stopped.
func Down(ctx context.Context, dir string) ([]string, error) {
	st, err := Load(dir)
	if err != nil {
		return nil, err
	}
	var stopped []string
	for _, c := range st.components() {
		if err := ctx.Err(); err != nil {
			return stopped, err
		}
		if stopProcess(c.PID, c.Binary, c.Start, 10*time.Second) {
			stopped = append(stopped, c.name)
		}
	}
	st.Processes = map[string]Process{}
	return stopped, st.save()
}

// stopProcess sends SIGTERM to pid if it still runs binary (and started
// at start, when not 0), then SIGKILL after grace. It reports whether the
// process was running.
func stopProcess(pid int, binary string, start uint64, grace time.Duration) bool {
	if !running(pid, binary, start) {
		return false
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for running(pid, binary, start) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for i := 0; i < 50 && running(pid, binary, start); i++ {
				time.Sleep(100 * time.Millisecond)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// String renders a process for messages.
func (p namedProcess) String() string { return fmt.Sprintf("%s (PID %d)", p.name, p.PID) }
