package cli

import (
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/demo"
)

// UpOptions are the flags of `berth up`.
type UpOptions struct {
	sandboxFlags
	CacheDir string
}

// NewCmdUp runs berth end to end on this machine.
func NewCmdUp(s Streams) *cobra.Command {
	o := &UpOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run berth end to end here: sandbox, Git server with example apps, the agent, and Applications",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := demo.Up(cmd.Context(), demo.Options{
				SandboxDir: o.dir(), CacheDir: o.CacheDir, Progress: s.ErrOut, Interactive: isTerminal(s.ErrOut),
			})
			if err != nil {
				return err
			}
			return demo.Describe(cmd.Context(), st, s.Out)
		},
	}
	o.bind(cmd.Flags())
	cmd.Flags().StringVar(&o.CacheDir, "cache-dir", "", "sandbox binary cache root (default $BERTH_CACHE_DIR or berth/sandbox in the user cache directory)")
	return cmd
}

// NewCmdDown stops what `berth up` started.
func NewCmdDown(s Streams) *cobra.Command {
	o := &sandboxFlags{}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the agent, the Git server and the sandbox started by `berth up` (by PID; files are kept)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stopped, err := demo.Down(cmd.Context(), o.dir())
			if err != nil {
				return err
			}
			printStopped(s, "berth", stopped)
			return nil
		},
	}
	o.bind(cmd.Flags())
	return cmd
}
