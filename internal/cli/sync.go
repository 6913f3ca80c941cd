package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-dev/berth/internal/apps"
)

// SyncOptions are the flags of `berth sync`.
type SyncOptions struct {
	connFlags
	Wait    bool
	Timeout time.Duration
}

// NewCmdSync asks the agent to fetch and apply an Application now.
func NewCmdSync(s Streams) *cobra.Command {
	o := &SyncOptions{}
	cmd := &cobra.Command{
		Use:   "sync APP",
		Short: "Fetch and apply an Application now (also when automated sync is off); exit 1 if the sync fails",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, ns, err := o.Client()
			if err != nil {
				return err
			}
			key := types.NamespacedName{Namespace: ns, Name: args[0]}
			token, err := apps.RequestSync(cmd.Context(), c, key)
			if err != nil {
				return err
			}
			if !o.Wait {
				fmt.Fprintf(s.Out, "sync of %s requested\n", key)
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.Timeout)
			defer cancel()
			app, err := apps.WaitSync(ctx, c, key, token)
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			fmt.Fprintf(s.Out, "%s synced to %s: %s\n", key, app.Status.LastAppliedRevision, app.Status.Health)
			return nil
		},
	}
	o.bind(cmd.Flags(), false)
	cmd.Flags().BoolVar(&o.Wait, "wait", true, "wait until the agent applied it and it is healthy")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long to wait")
	return cmd
}
