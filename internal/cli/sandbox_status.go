package cli

import (
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/sandbox"
)

// SandboxStatusOptions are the flags of `berth sandbox status`.
type SandboxStatusOptions struct {
	sandboxFlags
}

// NewCmdSandboxStatus tells which sandbox components run. Exit code 1 when
// any component is down.
func NewCmdSandboxStatus(s Streams) *cobra.Command {
	o := &SandboxStatusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show which sandbox components run (exit 1 if any is down)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := sandbox.Inspect(cmd.Context(), o.dir())
			if err != nil {
				return err
			}
			sandbox.PrintStatus(s.Out, st)
			if !st.Healthy() {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	o.bind(cmd.Flags())
	return cmd
}
