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
			printStopped(s, fmt.Sprintf("sandbox %q", o.Name), stopped)
			return nil
		},
	}
	o.bind(cmd.Flags())
	return cmd
}

func printStopped(s Streams, what string, stopped []string) {
	if len(stopped) == 0 {
		fmt.Fprintf(s.Out, "%s: nothing was running\n", what)
		return
	}
	fmt.Fprintf(s.Out, "%s stopped: %s\n", what, strings.Join(stopped, ", "))
}
