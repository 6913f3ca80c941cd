package cli

import (
	"log/slog"
	"os"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/agent"
)

// NewCmdAgent runs the in-cluster GitOps agent.
func NewCmdAgent(s Streams) *cobra.Command {
	o := agent.DefaultOptions()
	var jsonLogs bool
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the pull-based GitOps agent (in the cluster, or locally against a kubeconfig)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var h slog.Handler = slog.NewTextHandler(s.ErrOut, nil)
			if jsonLogs {
				h = slog.NewJSONHandler(s.ErrOut, nil)
			}
			return agent.Run(cmd.Context(), o, logr.FromSlogHandler(h))
		},
	}
	o.BindFlags(cmd.Flags())
	cmd.Flags().BoolVar(&jsonLogs, "log-json", os.Getenv("KUBERNETES_SERVICE_HOST") != "", "structured JSON logs (default in a cluster)")
	return cmd
}
