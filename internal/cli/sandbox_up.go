package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/sandbox"
)

// SandboxUpOptions are the flags of `berth sandbox up`.
type SandboxUpOptions struct {
	sandboxFlags
	CacheDir         string
	Nodes            int
	EncryptionAtRest bool
}

// NewCmdSandboxUp starts a sandbox, compiling it first if needed.
func NewCmdSandboxUp(s Streams) *cobra.Command {
	o := &SandboxUpOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a local Kubernetes sandbox and print how to reach it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			bins, err := sandbox.Build(ctx, sandbox.BuildOptions{
				CacheDir: o.CacheDir, Progress: s.ErrOut, Interactive: isTerminal(s.ErrOut),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(s.ErrOut, "starting the sandbox in %s\n", o.dir())
			st, err := sandbox.Up(ctx, sandbox.UpOptions{
				Dir: o.dir(), Binaries: bins, Nodes: o.Nodes, EncryptionAtRest: o.EncryptionAtRest, Progress: s.ErrOut,
			})
			if err != nil {
				return err
			}
			return sandbox.Describe(ctx, st, s.Out)
		},
	}
	o.bind(cmd.Flags())
	cmd.Flags().StringVar(&o.CacheDir, "cache-dir", "", "binary cache root (default $BERTH_CACHE_DIR or berth/sandbox in the user cache directory)")
	cmd.Flags().IntVar(&o.Nodes, "nodes", 1, "number of simulated (kwok) nodes")
	cmd.Flags().BoolVar(&o.EncryptionAtRest, "encryption-at-rest", false, "start the apiserver with an EncryptionConfiguration that encrypts Secrets in etcd")
	return cmd
}
