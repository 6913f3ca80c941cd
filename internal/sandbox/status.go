package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes"
)

// ComponentStatus tells whether one component runs.
type ComponentStatus struct {
	Name    string
	PID     int
	Running bool
	Log     string
}

// Status is the observed state of a sandbox.
type Status struct {
	Dir        string
	Kubeconfig string
	APIServer  string
	Components []ComponentStatus
	// Version is the apiserver's /version, empty if it did not answer.
	Version string
	// VersionErr says why Version is empty.
	VersionErr error
}

// Healthy reports whether every component runs and the apiserver answered.
func (s Status) Healthy() bool {
	if s.Version == "" || len(s.Components) == 0 {
		return false
	}
	for _, c := range s.Components {
		if !c.Running {
			return false
		}
	}
	return true
}

// Inspect reports which components of the sandbox in dir run and asks the
// apiserver for its version.
func Inspect(ctx context.Context, dir string) (Status, error) {
	st, err := Load(dir)
	if err != nil {
		return Status{}, err
	}
	s := Status{Dir: dir, Kubeconfig: st.Kubeconfig()}
	if st.Ports.APIServer != 0 {
		s.APIServer = fmt.Sprintf("https://127.0.0.1:%d", st.Ports.APIServer)
	}
	for _, name := range Components {
		p, ok := st.Processes[name]
		cs := ComponentStatus{Name: name, Log: LogPath(dir, name)}
		if ok {
			cs.PID = p.PID
			cs.Running = running(p.PID, p.Binary, p.Start)
		}
		s.Components = append(s.Components, cs)
	}
	if len(st.Processes) == 0 {
		s.VersionErr = fmt.Errorf("sandbox is stopped")
		return s, nil
	}
	cfg, err := RESTConfig(dir)
	if err != nil {
		s.VersionErr = err
		return s, nil
	}
	cfg.Timeout = 3 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		s.VersionErr = err
		return s, nil
	}
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		s.VersionErr = err
		return s, nil
	}
	var v version.Info
	if err := json.Unmarshal(raw, &v); err != nil {
		s.VersionErr = fmt.Errorf("decoding /version: %w", err)
		return s, nil
	}
	s.Version = v.GitVersion
	return s, nil
}
