package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// State describes one sandbox: where its files are and which processes Up
// started. It is stored as state.json in the state directory.
type State struct {
	// Dir is the state directory.
	Dir string `json:"dir"`
	// Ports are the loopback ports chosen at the last Up, by purpose.
	Ports Ports `json:"ports"`
	// Processes are the components Up started, by component name.
	Processes map[string]Process `json:"processes"`
	// Nodes is the number of kwok nodes.
	Nodes int `json:"nodes"`
	// EncryptionAtRest reports whether the apiserver was started with an
	// encryption configuration for Secrets.
	EncryptionAtRest bool `json:"encryptionAtRest,omitempty"`
	// Started is when Up finished.
	Started time.Time `json:"started"`
}

// Ports are the loopback ports of one sandbox.
type Ports struct {
	EtcdClient int `json:"etcdClient"`
	EtcdPeer   int `json:"etcdPeer"`
	APIServer  int `json:"apiServer"`
	Kwok       int `json:"kwok"`
}

// Process is one component process started by Up.
type Process struct {
	PID int `json:"pid"`
	// Start is the process's start time (see StartTime); 0 in a state
	// written before it was recorded, when the binary alone is checked.
	Start  uint64   `json:"start,omitempty"`
	Binary string   `json:"binary"`
	Args   []string `json:"args"`
	Log    string   `json:"log"`
}

// ErrNoSandbox is returned when a state directory holds no sandbox.
var ErrNoSandbox = errors.New("no sandbox in this state directory (run `berth sandbox up`)")

// DefaultStateDir returns the state directory of the sandbox called name:
// $BERTH_STATE_DIR/sandbox/NAME, or berth/sandbox/NAME under the user's
// state directory ($XDG_STATE_HOME or ~/.local/state).
func DefaultStateDir(name string) string {
	if name == "" {
		name = "default"
	}
	if d := os.Getenv("BERTH_STATE_DIR"); d != "" {
		return filepath.Join(d, "sandbox", name)
	}
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "berth", "sandbox", name)
}

// Kubeconfig returns the path of the admin kubeconfig.
func (s *State) Kubeconfig() string { return KubeconfigPath(s.Dir) }

// KubeconfigPath returns the admin kubeconfig of the sandbox in dir.
func KubeconfigPath(dir string) string { return filepath.Join(dir, "kubeconfig") }

// LogPath returns the log file of component in the sandbox in dir.
func LogPath(dir, component string) string {
	return filepath.Join(dir, "logs", component+".log")
}

// Load reads the state of the sandbox in dir.
func Load(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoSandbox)
	}
	if err != nil {
		return nil, fmt.Errorf("reading sandbox state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(dir, "state.json"), err)
	}
	s.Dir = dir
	if s.Processes == nil {
		s.Processes = map[string]Process{}
	}
	return &s, nil
}

func (s *State) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding sandbox state: %w", err)
	}
	tmp := filepath.Join(s.Dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("writing sandbox state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.Dir, "state.json")); err != nil {
		return fmt.Errorf("writing sandbox state: %w", err)
	}
	return nil
}
