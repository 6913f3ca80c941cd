package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/sandbox"
)

// SandboxKubeconfigOptions are the flags of `berth sandbox kubeconfig`.
type SandboxKubeconfigOptions struct {
	sandboxFlags
}

// NewCmdSandboxKubeconfig prints the path of the sandbox's admin kubeconfig.
func NewCmdSandboxKubeconfig(s Streams) *cobra.Command {
	o := &SandboxKubeconfigOptions{}
	cmd := &cobra.Command{
		Use:     "kubeconfig",
		Short:   "Print the path of the sandbox's admin kubeconfig",
		Example: `  kubectl --kubeconfig "$(berth sandbox kubeconfig)" get nodes`,
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if _, err := sandbox.Load(o.dir()); err != nil {
				return err
			}
			fmt.Fprintln(s.Out, sandbox.KubeconfigPath(o.dir()))
			return nil
		},
	}
	o.bind(cmd.Flags())
	return cmd
}
