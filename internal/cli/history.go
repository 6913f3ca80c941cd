package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-dev/berth/internal/apps"
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
}

// NewCmdRollback pins an Application to an earlier release.
func NewCmdRollback(s Streams) *cobra.Command {
	o := &RollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback APP",
		Short: "Roll back to an earlier release (default: the last healthy one) and pin it while auto-sync stays on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, ns, err := o.Client()
			if err != nil {
				return err
			}
			n, err := apps.RequestRollback(cmd.Context(), c, types.NamespacedName{Namespace: ns, Name: args[0]}, o.To)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "rollback of %s to release %d requested; `berth history %s` shows it\n", args[0], n, args[0])
			return nil
		},
	}
	o.bind(cmd.Flags(), false)
	cmd.Flags().Int64Var(&o.To, "to", 0, "release number (default: the newest healthy release before the current one)")
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
