package rehearsal_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/cli"
	"github.com/berth-dev/berth/internal/sandbox"
)

// TestCommandExitCodes runs `berth rehearse` through the command tree:
// 0 for a drill that passes, 1 for one that fails, 2 when it cannot run.
func TestCommandExitCodes(t *testing.T) {
	t.Parallel()
	good := setup(t, "good", true)
	goodPair(t, good)
	bad := good.another(t, "bad")
	bad.release(t, berthv1.ReleaseHealthy, deployment("example.test/web:1", 0), configMap("web-config", "1", false), service())
	bad.release(t, berthv1.ReleaseFailed, deployment("example.test/web:2-never-ready", 0), configMap("web-config", "2", false), service())
	kubeconfig := sandbox.KubeconfigPath(good.env.Dir)
	for _, tc := range []struct {
		app, out string
		code     int
	}{
		{"good", "rehearsal passed: release 1 -> 2 -> 1", 0},
		{"bad", "rehearsal failed at step 2 (upgrade to release 2): not healthy within 3s; apps/Deployment", 1},
		{"missing", "berth: reading Application " + good.ns + "/missing", 2},
	} {
		t.Run(tc.app, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := cli.Main(context.Background(), []string{"rehearse", tc.app, "-n", good.ns, "--kubeconfig", kubeconfig, "--timeout", "3s"},
				cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
			t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if !strings.Contains(out.String()+errOut.String(), tc.out) {
				t.Errorf("output lacks %q", tc.out)
			}
		})
	}
}
