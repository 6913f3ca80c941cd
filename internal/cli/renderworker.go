package cli

import (
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/renderworker"
)

// NewCmdRenderWorker is the agent's render worker process: it renders
// Helm charts and Kustomize overlays the agent sends on stdin and answers
// on stdout (see renderworker). The agent starts it; people do not.
func NewCmdRenderWorker(Streams) *cobra.Command {
	return &cobra.Command{
		Use:    "render-worker",
		Short:  "Render charts and overlays for the agent, over stdin and stdout",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return renderworker.ServeProcess(cmd.Context())
		},
	}
}
