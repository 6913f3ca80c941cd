package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/clio"
	"github.com/berth-dev/berth/internal/oci"
	"github.com/berth-dev/berth/internal/sandbox"
)

// NewCmdVersion prints berth's version, the sandbox's pinned components and
// the gzip inflater the image scanner was built with.
func NewCmdVersion(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print berth's version and the sandbox component versions",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			fmt.Fprintf(s.Out, "berth %s\nsandbox: kubernetes %s, etcd %s, kwok %s\nscan: gzip inflater %s\n", clio.Version(),
				sandbox.KubernetesVersion, sandbox.EtcdVersion, sandbox.KwokVersion, oci.GzipInflater)
			return nil
		},
	}
}
