package scancmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/clio"
	"github.com/berth-dev/berth/internal/oci"
)

// NewRootCmd builds berth-scan's command tree: the scanner's commands of
// berth, with the same flags, output and exit codes, and a version.
func NewRootCmd(s clio.Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "berth-scan",
		Short: "berth's image scanner alone: known vulnerabilities, hard-coded secrets and malicious packages",
		Long: `berth-scan is berth's image scanner without the rest of berth, for CI images: the same
scan and db commands as ` + "`berth scan`" + ` and ` + "`berth db`" + `, with the same flags, output and
exit codes (0 pass, 1 findings at or above --fail-on, 2 the scan could not run). It holds
no Kubernetes client and cannot reach a cluster.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	root.AddCommand(NewCmdScan(s), NewCmdDB(s), &cobra.Command{
		Use:   "version",
		Short: "Print berth-scan's version and its gzip inflater",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			fmt.Fprintf(s.Out, "berth-scan %s\nscan: gzip inflater %s\n", clio.Version(), oci.GzipInflater)
			return nil
		},
	})
	return root
}
