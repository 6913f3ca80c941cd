package demo

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/sandbox"
)

// sleeper starts a process that lives until the test ends, and returns it
// as Down would find it recorded (argv0, PID, start time).
func sleeper(t *testing.T) Proc {
	t.Helper()
	bin, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("sleep: %v", err)
	}
	cmd := exec.Command(bin, "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	p := Proc{PID: cmd.Process.Pid, Start: sandbox.StartTime(cmd.Process.Pid), Binary: bin, Args: []string{"300"}}
	// Until it has exec'd, the child runs the test's binary.
	for deadline := time.Now().Add(5 * time.Second); !stillRuns(p); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start", bin)
		}
	}
	return p
}

// stillRuns reports whether p's process runs (a stopped child of the test
// is a zombie until reaped, which Running tells apart).
func stillRuns(p Proc) bool { return sandbox.Running(p.PID, p.Binary, p.Start) }

// Down signals only what Up recorded: a PID now held by another process,
// even of the same binary (another agent, a render worker), is left alone.
func TestDownLeavesARecycledPIDAlone(t *testing.T) {
	dir := t.TempDir()
	other, mine := sleeper(t), sleeper(t)
	recycled := other
	recycled.Start++ // the recorded process started at another time
	st := &State{Dir: dir, Processes: map[string]Proc{"agent": recycled, "git-server": mine}}
	if err := st.save(); err != nil {
		t.Fatal(err)
	}
	stopped, err := Down(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 1 || stopped[0] != "git-server" {
		t.Errorf("stopped %v, want the Git server alone", stopped)
	}
	if !stillRuns(other) {
		t.Error("a process whose PID was recorded with another start time was signalled")
	}
	if stillRuns(mine) {
		t.Error("the recorded process still runs")
	}
}

// A sandbox that Up found running (`berth sandbox up`) is left running by
// Down; one Up started is stopped, once.
func TestDownStopsOnlyTheSandboxUpStarted(t *testing.T) {
	for _, started := range []bool{false, true} {
		dir := t.TempDir()
		etcd := sleeper(t)
		sb := map[string]any{"processes": map[string]any{"etcd": map[string]any{"pid": etcd.PID, "start": etcd.Start, "binary": etcd.Binary}}}
		b, _ := json.Marshal(sb)
		if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		st := &State{Dir: dir, Processes: map[string]Proc{}}
		st.setStartedSandbox(started)
		if err := st.save(); err != nil {
			t.Fatal(err)
		}
		stopped, err := Down(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if stillRuns(etcd) == started || (len(stopped) == 1) != started {
			t.Errorf("started by Up %v: stopped %v, etcd still runs %v", started, stopped, stillRuns(etcd))
		}
		if again, _ := load(dir); again == nil || again.startedSandbox() {
			t.Errorf("started by Up %v: the state still says Up started the sandbox: %+v", started, again)
		}
	}
	// A state an earlier berth wrote (no startedSandbox): its Up started
	// the sandbox, and Down stops it as it did.
	dir0 := t.TempDir()
	etcd0 := sleeper(t)
	b0, _ := json.Marshal(map[string]any{"processes": map[string]any{"etcd": map[string]any{"pid": etcd0.PID, "start": etcd0.Start, "binary": etcd0.Binary}}})
	if err := os.WriteFile(filepath.Join(dir0, "state.json"), b0, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir0, "demo.json"), []byte(`{"dir":"`+dir0+`","processes":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if stopped, err := Down(context.Background(), dir0); err != nil || len(stopped) != 1 || stillRuns(etcd0) {
		t.Errorf("with an earlier berth's state: stopped %v, %v; etcd still runs %v", stopped, err, stillRuns(etcd0))
	}

	// Up never ran here: nothing is stopped, whatever runs.
	dir := t.TempDir()
	etcd := sleeper(t)
	b, _ := json.Marshal(map[string]any{"processes": map[string]any{"etcd": map[string]any{"pid": etcd.PID, "start": etcd.Start, "binary": etcd.Binary}}})
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if stopped, err := Down(context.Background(), dir); err != nil || len(stopped) != 0 || !stillRuns(etcd) {
		t.Errorf("without demo state: stopped %v, %v; etcd still runs %v", stopped, err, stillRuns(etcd))
	}
}
