package cli

import (
	"context"
	"io"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/berth-dev/berth/internal/cli/clio"
	"github.com/berth-dev/berth/internal/cli/scancmd"
)

// Streams are the command's standard streams.
type Streams = clio.Streams

// ExitError carries a specific exit code out of a command.
type ExitError = clio.ExitError

// isTerminal reports whether w is a terminal (see clio.IsTerminal).
func isTerminal(w io.Writer) bool { return clio.IsTerminal(w) }

// NewRootCmd builds the berth command tree.
func NewRootCmd(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "Pull-based GitOps delivery for Kubernetes",
		Long:          "berth delivers applications from Git to Kubernetes clusters along one safe path: validate, scan, apply, verify, roll back.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			// Libraries (controller-runtime) log through a deferred logger;
			// outside the agent nothing of theirs is for the user's eyes.
			if cmd.Name() != "agent" {
				ctrllog.SetLogger(logr.Discard())
			}
		},
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	root.AddCommand(NewCmdSandbox(s), NewCmdVersion(s), scancmd.NewCmdScan(s), scancmd.NewCmdDB(s), NewCmdCheck(s), NewCmdAudit(s),
		NewCmdAgent(s), NewCmdGet(s), NewCmdSync(s), NewCmdDiff(s), NewCmdRender(s), NewCmdInstall(s), NewCmdUninstall(s),
		NewCmdUp(s), NewCmdDown(s), NewCmdGitServer(s), NewCmdNotify(s), NewCmdBench(s),
		NewCmdHistory(s), NewCmdRollback(s), NewCmdUnpin(s), NewCmdRehearse(s), NewCmdRenderWorker(s))
	return root
}

// Main runs berth with args and returns the process exit code.
func Main(ctx context.Context, args []string, s Streams) int {
	return clio.Execute(ctx, NewRootCmd(s), args, s)
}
