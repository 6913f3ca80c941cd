package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const childEnv = "BERTH_SANDBOX_TEST_START_CHILD"

// TestStartChild is not a test of its own: TestDieWithParent runs it in a
// process of its own, which starts a component and exits at once.
func TestStartChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		return
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	p, err := start("sleep", sleep, []string{"300"}, filepath.Join(t.TempDir(), "sleep.log"), mode == "die")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("PID=%d\n", p.cmd.Process.Pid)
}

// gone reports whether pid has exited (a zombie counts: init reaps it).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) STATE ...
	rest := string(b[bytes.LastIndexByte(b, ')')+1:])
	return strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// A component started for a test or a benchmark dies with the process that
// started it, however that ends; one started for `berth sandbox up` outlives
// it.
func TestDieWithParent(t *testing.T) {
	for _, mode := range []string{"die", "outlive"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStartChild$", "-test.count=1") //nolint:noctx // short-lived helper
		cmd.Env = append(os.Environ(), childEnv+"="+mode)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: helper: %v\n%s", mode, err, out)
		}
		_, after, ok := strings.Cut(string(out), "PID=")
		if !ok {
			t.Fatalf("%s: helper printed no PID:\n%s", mode, out)
		}
		pid, err := strconv.Atoi(strings.Fields(after)[0])
		if err != nil {
			t.Fatal(err)
		}
		wait := 10 * time.Second // for the kill
		if mode == "outlive" {
			wait = 2 * time.Second // for a kill that must not come
		}
		deadline := time.Now().Add(wait)
		for !gone(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		switch {
		case mode == "die" && !gone(pid):
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("a component started with dieWithParent outlived its parent by %s", wait)
		case mode == "outlive" && gone(pid):
			t.Errorf("a component started without dieWithParent died with its parent")
		case mode == "outlive":
			_ = syscall.Kill(pid, syscall.SIGKILL) // it ran on, as it should: ours to end
		}
	}
}
