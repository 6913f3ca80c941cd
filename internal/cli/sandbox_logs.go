package cli

import (
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/sandbox"
)

// SandboxLogsOptions are the flags of `berth sandbox logs`.
type SandboxLogsOptions struct {
	sandboxFlags
	Follow bool
	Tail   int
}

// NewCmdSandboxLogs prints a component's log, or lists the log files.
func NewCmdSandboxLogs(s Streams) *cobra.Command {
	o := &SandboxLogsOptions{}
	cmd := &cobra.Command{
		Use:       "logs [COMPONENT]",
		Short:     "Print a sandbox component's log, or list the log files",
		ValidArgs: sandbox.Components,
		Args:      cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return sandbox.ListLogs(o.dir(), s.Out)
			}
			return sandbox.Logs(cmd.Context(), o.dir(), args[0], s.Out, sandbox.LogOptions{Follow: o.Follow, Tail: o.Tail})
		},
	}
	o.bind(cmd.Flags())
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep printing as the log grows")
	cmd.Flags().IntVar(&o.Tail, "tail", 100, "lines to print from the end (-1: all)")
	return cmd
}
