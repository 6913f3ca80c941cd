package cli

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/sandbox"
)

// sandboxFlags are shared by every sandbox subcommand.
type sandboxFlags struct {
	Name     string
	StateDir string
}

func (f *sandboxFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.Name, "name", "default", "sandbox name (several can run side by side)")
	fs.StringVar(&f.StateDir, "state-dir", "", "state directory (default: berth/sandbox/NAME under $XDG_STATE_HOME, or $BERTH_STATE_DIR/sandbox/NAME)")
}

func (f *sandboxFlags) dir() string {
	if f.StateDir != "" {
		return f.StateDir
	}
	return sandbox.DefaultStateDir(f.Name)
}

// NewCmdSandbox groups the commands that manage the local Kubernetes sandbox.
func NewCmdSandbox(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run a real local Kubernetes control plane (etcd, apiserver, controller-manager, scheduler, kwok)",
		Long: `The sandbox is a real Kubernetes ` + sandbox.KubernetesVersion + ` control plane on loopback, compiled from
source on first use, with kwok simulating nodes and pods. Pods whose image tag ends in
-never-ready or -crashloop (or that carry the annotation ` + sandbox.FailAnnotation + `)
never become Ready, to rehearse failed rollouts.`,
	}
	cmd.AddCommand(NewCmdSandboxBuild(s), NewCmdSandboxUp(s), NewCmdSandboxDown(s), NewCmdSandboxStatus(s),
		NewCmdSandboxKubeconfig(s), NewCmdSandboxLogs(s))
	return cmd
}
