package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/apps"
)

// GetOptions are the flags of `berth get apps`.
type GetOptions struct {
	connFlags
	Watch bool
}

// NewCmdGet lists berth resources.
func NewCmdGet(s Streams) *cobra.Command {
	o := &GetOptions{}
	cmd := &cobra.Command{
		Use:       "get apps",
		Short:     "List Applications: what runs where, at which commit, how healthy, and why not",
		Example:   "  berth get apps -A\n  berth get apps -n shop -w",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"apps", "applications", "app"},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "apps", "app", "applications", "application":
			default:
				return fmt.Errorf("unknown resource %q (berth get apps)", args[0])
			}
			c, _, ns, err := o.Client()
			if err != nil {
				return err
			}
			if o.AllNamespaces {
				ns = ""
			}
			if o.Watch {
				return apps.Watch(cmd.Context(), c, ns, s.Out, o.AllNamespaces)
			}
			list, err := apps.List(cmd.Context(), c, ns)
			if err != nil {
				return err
			}
			if len(list) == 0 {
				if ns == "" {
					fmt.Fprintf(s.ErrOut, "no Applications found in any namespace\n")
				} else {
					fmt.Fprintf(s.ErrOut, "no Applications found in namespace %s (-n NAMESPACE, or -A for all; `berth up` puts its own in berth-demo)\n", ns)
				}
				return nil
			}
			apps.PrintTable(s.Out, list, o.AllNamespaces, time.Now())
			return nil
		},
	}
	o.bind(cmd.Flags(), true)
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", false, "print the table again on every change")
	return cmd
}
