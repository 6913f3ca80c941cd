package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-dev/berth/internal/apps"
	"github.com/berth-dev/berth/internal/gitrevert"
	"github.com/berth-dev/berth/internal/release"
)

// NewCmdHistory lists an Application's releases.
func NewCmdHistory(s Streams) *cobra.Command {
	o := &connFlags{}
	cmd := &cobra.Command{
		Use:   "history APP",
		Short: "List an Application's releases: rev, commit, images, health, way back, when, why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, ns, err := o.Client()
			if err != nil {
				return err
			}
			return apps.PrintHistory(cmd.Context(), c, types.NamespacedName{Namespace: ns, Name: args[0]}, s.Out, time.Now())
		},
	}
	o.bind(cmd.Flags(), false)
	return cmd
}

// RollbackOptions are the flags of `berth rollback`.
type RollbackOptions struct {
	connFlags
	To int64
	// Wait for the agent's answer and the rollback release's verdict.
	Wait    bool
	Timeout time.Duration
	// RevertInGit also pushes a commit that restores the Application's path
	// to the release's commit, with the user's own Git credentials.
	RevertInGit bool
	Git         gitrevert.Credentials
}

// NewCmdRollback pins an Application to an earlier release.
// Exit codes: 0 done (rolled back and healthy, Git reverted when asked),
// 1 rolled back or requested but not healthy, not confirmed in time, or
// Git not reverted, 2 nothing done (refused here or by the agent).
func NewCmdRollback(s Streams) *cobra.Command {
	o := &RollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback APP",
		Short: "Roll back to an earlier release (default: the last healthy one) and pin it while auto-sync stays on",
		Long: "Roll back to an earlier release (default: the last healthy one) and pin it while auto-sync stays on.\n\n" +
			"With --revert-in-git, also push a commit that restores the Application's path on its branch to the\n" +
			"release's commit, using your own Git credentials (never the agent's). The rollback is requested first;\n" +
			"when Git cannot be reverted the command says why and exits 1. See docs/revert-in-git.md.\n\n" +
			"By default the command waits for the agent: exit 0 once the rollback release is healthy, 1 when it\n" +
			"is not (or --timeout passes first), 2 when the agent refuses the rollback (nothing changed, and Git\n" +
			"is not reverted). With --wait=false it exits once the request is made.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, ns, err := o.Client()
			if err != nil {
				return err
			}
			key := types.NamespacedName{Namespace: ns, Name: args[0]}
			n, token, err := apps.RequestRollback(cmd.Context(), c, key, o.To)
			if err != nil {
				return err
			}
			if !o.Wait {
				fmt.Fprintf(s.Out, "rollback of %s to release %d requested; `berth history %s` shows it\n", args[0], n, args[0])
			} else {
				fmt.Fprintf(s.Out, "rollback of %s to release %d requested; waiting for the agent\n", args[0], n)
				ctx, cancel := context.WithTimeout(cmd.Context(), o.Timeout)
				defer cancel()
				rel, err := apps.WaitRollback(ctx, c, key, token)
				if _, refused := errors.AsType[*apps.RollbackRefusedError](err); refused {
					return &ExitError{Code: 2, Err: err}
				}
				if err != nil {
					return &ExitError{Code: 1, Err: err}
				}
				fmt.Fprintf(s.Out, "%s rolled back to release %d as release %d (commit %s), healthy; pinned while Git is at %s: `berth unpin %s` or a new commit follows Git again\n",
					args[0], n, rel.Spec.Number, release.ShortCommit(rel.Spec.Commit), release.ShortCommit(rel.Spec.RolledBackFrom), args[0])
			}
			if !o.RevertInGit {
				return nil
			}
			res, err := gitrevert.RestoreRelease(cmd.Context(), c, key, n, o.Git)
			if err != nil {
				return &ExitError{Code: 1, Err: fmt.Errorf("the rollback is requested, but Git was not reverted: %w", err)}
			}
			fmt.Fprintln(s.Out, res.Summary())
			return nil
		},
	}
	o.bind(cmd.Flags(), false)
	fs := cmd.Flags()
	fs.Int64Var(&o.To, "to", 0, "release number (default: the newest healthy release before the current one)")
	fs.BoolVar(&o.Wait, "wait", true, "wait until the agent rolled back and the release is healthy")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long to wait")
	fs.BoolVar(&o.RevertInGit, "revert-in-git", false, "also push a commit restoring the app's path in Git to the release's commit")
	fs.StringVar(&o.Git.Username, "git-username", "", "HTTPS user for --revert-in-git (default $"+gitrevert.EnvUsername+")")
	fs.StringVar(&o.Git.PasswordFile, "git-password-file", "", "file holding the HTTPS password or token for --revert-in-git (default $"+gitrevert.EnvPassword+")")
	fs.StringVar(&o.Git.SSHKeyFile, "git-ssh-key", "", "private key for ssh:// repositories (default: the SSH agent)")
	fs.StringVar(&o.Git.KnownHostsFile, "git-known-hosts", "", "known_hosts for ssh:// repositories (default $SSH_KNOWN_HOSTS, ~/.ssh/known_hosts)")
	return cmd
}

// NewCmdUnpin makes a pinned Application follow Git again.
func NewCmdUnpin(s Streams) *cobra.Command {
	o := &connFlags{}
	cmd := &cobra.Command{
		Use:   "unpin APP",
		Short: "Follow Git again after a rollback",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, ns, err := o.Client()
			if err != nil {
				return err
			}
			if err := apps.RequestUnpin(cmd.Context(), c, types.NamespacedName{Namespace: ns, Name: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "%s will follow Git again\n", args[0])
			return nil
		},
	}
	o.bind(cmd.Flags(), false)
	return cmd
}
