package demo

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/berth-dev/berth/internal/sandbox"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// State records what Up started, next to the sandbox's own state.
type State struct {
	Dir        string `json:"dir"`
	GitURL     string `json:"gitURL"`
	WebhookURL string `json:"webhookURL"`
	MetricsURL string `json:"metricsURL"`
	// Ports are those of the Git server, the webhooks, the metrics and
	// the probes: the next Up takes them again when they are free, so a
	// clone of the repository keeps its remote.
	Ports     []int           `json:"ports,omitempty"`
	Processes map[string]Proc `json:"processes"`
	Started   time.Time       `json:"started"`
	// StartedSandbox: the sandbox running is the one Up started (not one
	// it found running, from `berth sandbox up`); Down stops it only then.
	// Absent (a state an earlier berth wrote, when Up always owned it):
	// true.
	StartedSandbox *bool `json:"startedSandbox,omitempty"`
}

// startedSandbox reports whether Up started the sandbox running in s.Dir.
func (s *State) startedSandbox() bool { return s.StartedSandbox == nil || *s.StartedSandbox }

// setStartedSandbox records whether Up started the sandbox.
func (s *State) setStartedSandbox(v bool) { s.StartedSandbox = &v }

// Proc is one process Up started.
type Proc struct {
	PID int `json:"pid"`
	// Start is its start time (see sandbox.StartTime); 0 in a state
	// written before it was recorded.
	Start  uint64   `json:"start,omitempty"`
	Binary string   `json:"binary"`
	Args   []string `json:"args"`
	Log    string   `json:"log"`
}

func statePath(dir string) string { return filepath.Join(dir, "demo.json") }

func load(dir string) (*State, error) {
	b, err := os.ReadFile(statePath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading demo state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", statePath(dir), err)
	}
	return &s, nil
}

func (s *State) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(statePath(s.Dir), b, 0o600)
}

// alive reports whether p still runs: its PID, binary and start time.
func (p Proc) alive() bool { return sandbox.Running(p.PID, p.Binary, p.Start) }

func (p Proc) stop() bool {
	if !p.alive() {
		return false
	}
	_ = syscall.Kill(p.PID, syscall.SIGTERM)
	for i := 0; i < 100 && p.alive(); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if p.alive() {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
	return true
}
