package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Streams are the command's standard streams.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// isTerminal reports whether w is a character device (a terminal), so long
// work shows a live progress line there and plain lines in CI logs.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ExitError carries a specific exit code out of a command.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

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
	root.AddCommand(NewCmdSandbox(s), NewCmdVersion(s), NewCmdScan(s), NewCmdDB(s), NewCmdCheck(s), NewCmdAudit(s),
		NewCmdAgent(s), NewCmdGet(s), NewCmdSync(s), NewCmdDiff(s), NewCmdRender(s), NewCmdInstall(s),
		NewCmdUp(s), NewCmdDown(s), NewCmdGitServer(s), NewCmdNotify(s), NewCmdBench(s),
		NewCmdHistory(s), NewCmdRollback(s), NewCmdUnpin(s), NewCmdRehearse(s))
	return root
}

// Main runs berth with args and returns the process exit code.
func Main(ctx context.Context, args []string, s Streams) int {
	root := NewRootCmd(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintln(s.ErrOut, "berth:", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintln(s.ErrOut, "berth:", err)
	return 2
}
