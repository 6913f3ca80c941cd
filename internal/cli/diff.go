package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/apps"
)

// DiffOptions are the flags of `berth diff`.
type DiffOptions struct {
	connFlags
}

// NewCmdDiff shows what the next sync of an Application would change.
// Exit codes: 0 no change, 1 changes, 2 error (like diff(1)).
func NewCmdDiff(s Streams) *cobra.Command {
	o := &DiffOptions{}
	cmd := &cobra.Command{
		Use:   "diff APP",
		Short: "Show, as a unified diff, what the next sync would change (exit 0 none, 1 changes, 2 error)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cfg, ns, err := o.Client()
			if err != nil {
				return err
			}
			res, err := apps.Diff(cmd.Context(), c, cfg, types.NamespacedName{Namespace: ns, Name: args[0]})
			if err != nil {
				return err
			}
			out := apply.FormatDiffs(res.Objects)
			for _, p := range res.Prune {
				out += fmt.Sprintf("--- live/%s\n+++ (pruned: removed from Git)\n", p)
			}
			// Kept objects change nothing: said on stderr, like the summary.
			for _, k := range res.Kept {
				fmt.Fprintf(s.ErrOut, "kept, though removed from Git: %s\n", k)
			}
			if out == "" {
				fmt.Fprintf(s.ErrOut, "%s at %s: no changes\n", args[0], res.Revision)
				return nil
			}
			fmt.Fprint(s.Out, out)
			return &ExitError{Code: 1}
		},
	}
	o.bind(cmd.Flags(), false)
	return cmd
}
