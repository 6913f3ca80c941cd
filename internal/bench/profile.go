package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/berth-dev/berth/internal/sandbox"
)

// profileEnv names a directory: when set, the bench writes a CPU profile
// of the API server for each phase it times (agent and baseline), so the
// two can be compared with `go tool pprof -top -diff_base`.
const profileEnv = "BERTH_BENCH_APISERVER_PROFILE"

// profileSeconds is how long each profile runs: it starts with the phase,
// and the API server's profile endpoint needs a length in advance.
const profileSeconds = 30

// profileArgs turns the API server's profile endpoint on (the sandbox
// starts with it off) when a profile is asked for.
func profileArgs() map[string][]string {
	if os.Getenv(profileEnv) == "" {
		return nil
	}
	return map[string][]string{sandbox.APIServer: {"--profiling=true"}}
}

// profileAPIServer starts a CPU profile of the API server behind cfg,
// written to $BERTH_BENCH_APISERVER_PROFILE/name.pprof, when that is set.
// wait blocks until the profile is written and reports where, or why not.
func profileAPIServer(ctx context.Context, cfg *rest.Config, name string, out io.Writer) (wait func()) {
	dir := os.Getenv(profileEnv)
	if dir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := filepath.Join(dir, name+".pprof")
		if err := writeProfile(ctx, cfg, path); err != nil {
			fmt.Fprintf(out, "API server profile %s: %v\n", name, err)
			return
		}
		fmt.Fprintf(out, "API server profile (%d s from the phase's start): %s\n", profileSeconds, path)
	}()
	return func() { <-done }
}

func writeProfile(ctx context.Context, cfg *rest.Config, path string) error {
	c := rest.CopyConfig(cfg)
	c.Timeout = profileSeconds*time.Second + time.Minute
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return err
	}
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
		Param("seconds", strconv.Itoa(profileSeconds)).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("reading the API server's profile: %w", err)
	}
	// The directory is the one the person running the bench named.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { //nolint:gosec // see above
		return err
	}
	return os.WriteFile(path, raw, 0o600) //nolint:gosec // see above
}
