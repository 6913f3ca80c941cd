package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-dev/berth/internal/apps"
	"github.com/berth-dev/berth/internal/gitrevert"
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
	// RevertInGit also pushes a commit that restores the Application's path
	// to the release's commit, with the user's own Git credentials.
	RevertInGit bool
	Git         gitrevert.Credentials
}

// NewCmdRollback pins an Application to an earlier release.
// Exit codes: 0 done, 1 rollback requested but Git not reverted, 2 nothing done.
func NewCmdRollback(s Streams) *cobra.Command {
	o := &RollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback APP",
		Short: "Roll back to an earlier release (default: the last healthy one) and pin it while auto-sync stays on",
		Long: "Roll back to an earlier release (default: the last healthy one) and pin it while auto-sync stays on.\n\n" +
			"With --revert-in-git, also push a commit that restores the Application's path on its branch to the\n" +
			"release's commit, using your own Git credentials (never the agent's). The rollback is requested first;\n" +
			"when Git cannot be reverted the command says why and exits 1. See docs/revert-in-git.md.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, ns, err := o.Client()
			if err != nil {
				return err
			}
			key := types.NamespacedName{Namespace: ns, Name: args[0]}
			n, err := apps.RequestRollback(cmd.Context(), c, key, o.To)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "rollback of %s to release %d requested; `berth history %s` shows it\n", args[0], n, args[0])
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
