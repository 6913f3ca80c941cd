package cli

import (
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-dev/berth/internal/rehearsal"
)

// RehearseOptions are the flags of `berth rehearse`.
type RehearseOptions struct {
	connFlags
	From, To int64
	Timeout  time.Duration
	Keep     bool
}

// NewCmdRehearse runs a rollback drill of an Application in a scratch
// namespace. Exit codes: 0 the drill passed, 1 it failed, 2 it could not
// run.
func NewCmdRehearse(s Streams) *cobra.Command {
	o := &RehearseOptions{Timeout: rehearsal.DefaultTimeout}
	cmd := &cobra.Command{
		Use:   "rehearse APP",
		Short: "Rollback drill in a scratch namespace: deploy --from, upgrade to --to, roll back (exit 0 pass, 1 fail, 2 error)",
		Long: `Rehearse a rollback of an Application for real, in a scratch namespace: deploy
release --from, upgrade to --to, roll back to --from, each step applied, pruned
and waited on until healthy, then delete the namespace. The releases are read
from their Release records, checked against their digest. Cluster-scoped
objects and objects of other namespaces are only checked with a server-side
dry-run. Writes impersonate the Application's service account when you may.
Exit codes: 0 the drill passed, 1 a step failed (the line says which and why),
2 the drill could not run. See docs/rehearsal.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cfg, ns, err := o.Client()
			if err != nil {
				return err
			}
			res, err := rehearsal.Run(cmd.Context(), c, cfg, rehearsal.Options{
				App: types.NamespacedName{Namespace: ns, Name: args[0]}, From: o.From, To: o.To,
				Timeout: o.Timeout, Keep: o.Keep, Out: s.Out,
			})
			if err != nil {
				return err
			}
			if !res.Passed() {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	o.bind(cmd.Flags(), false)
	fs := cmd.Flags()
	fs.Int64Var(&o.From, "from", 0, "release to start from and roll back to (default: the newest healthy release before --to)")
	fs.Int64Var(&o.To, "to", 0, "release to upgrade to (default: the Application's current release)")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long each step waits for its objects to become healthy")
	fs.BoolVar(&o.Keep, "keep", false, "keep the scratch namespace for inspection (deleted by a later drill after 24h)")
	return cmd
}
