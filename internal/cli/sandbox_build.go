package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/sandbox"
)

// SandboxBuildOptions are the flags of `berth sandbox build`.
type SandboxBuildOptions struct {
	CacheDir string
}

// NewCmdSandboxBuild compiles the sandbox components without starting them.
func NewCmdSandboxBuild(s Streams) *cobra.Command {
	o := &SandboxBuildOptions{}
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Compile the sandbox components into the cache (done by `up` when needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bins, err := sandbox.Build(cmd.Context(), sandbox.BuildOptions{
				CacheDir: o.CacheDir, Progress: s.ErrOut, Interactive: isTerminal(s.ErrOut),
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(s.Out, bins.Dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.CacheDir, "cache-dir", "", "binary cache root (default $BERTH_CACHE_DIR or berth/sandbox in the user cache directory)")
	return cmd
}
