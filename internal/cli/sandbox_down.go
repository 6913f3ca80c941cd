package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/sandbox"
)

// SandboxDownOptions are the flags of `berth sandbox down`.
type SandboxDownOptions struct {
	sandboxFlags
}

// NewCmdSandboxDown stops the processes a sandbox started.
func NewCmdSandboxDown(s Streams) *cobra.Command {
	o := &SandboxDownOptions{}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the sandbox's processes (by PID); its files are kept for the next up",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stopped, err := sandbox.Down(cmd.Context(), o.dir())
			if err != nil {
				return err
			}
			if len(stopped) == 0 {
				fmt.Fprintf(s.Out, "sandbox %q: nothing was running\n", o.Name)
				return nil
			}
			fmt.Fprintf(s.Out, "sandbox %q stopped: %s\n", o.Name, strings.Join(stopped, ", "))
			return nil
		},
	}
	o.bind(cmd.Flags())
	return cmd
}
