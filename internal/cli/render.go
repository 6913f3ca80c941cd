package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/internal/controller/application"
	"github.com/berth-dev/berth/internal/render"
)

// RenderOptions are the flags of `berth render`.
type RenderOptions struct {
	Environment string
	Namespace   string
	ReleaseName string
	ValuesFiles []string
	AllowRemote bool
	Quiet       bool
	// KubeVersion and APIVersions are the cluster Helm templates see
	// (.Capabilities); the agent reads them from its cluster.
	KubeVersion string
	APIVersions []string
	// Root is the repository: Kustomize may load nothing outside it, and a
	// Helm chart's symlinks must resolve inside it, as in the agent, which
	// confines both to the fetched revision. A pull request's manifests
	// cannot print the CI runner's files.
	Root string
}

// NewCmdRender renders a directory offline like the agent and validates it.
// Exit codes: 0 valid, 1 invalid input, 2 tool error.
func NewCmdRender(s Streams) *cobra.Command {
	o := &RenderOptions{}
	cmd := &cobra.Command{
		Use:   "render PATH",
		Short: "Render a directory (plain YAML, Kustomize or Helm) offline as the agent would; exit 1 on invalid input",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); err != nil {
				return err
			}
			res, err := render.Render(cmd.Context(), args[0], render.Options{
				Environment: o.Environment, Namespace: o.Namespace, ReleaseName: o.ReleaseName,
				ValuesFiles: o.ValuesFiles, AllowRemoteBases: o.AllowRemote, Root: rootOf(o.Root, args[0]),
				KubeVersion: o.KubeVersion, APIVersions: o.APIVersions,
			})
			if err == nil {
				// The agent's own rule on data hooks (berth.dev/hook).
				err = application.CheckHooks(res.Kind, res.Objects)
			}
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			summary := fmt.Sprintf("%s: %d objects (%s)", args[0], len(res.Objects), res.Kind)
			if len(res.HelmHooks) > 0 {
				summary += fmt.Sprintf(", %d Helm hooks", len(res.HelmHooks))
			}
			if o.Quiet {
				fmt.Fprintln(s.ErrOut, summary)
				return nil
			}
			for _, obj := range res.Objects {
				b, err := yaml.Marshal(obj.Object.Object)
				if err != nil {
					return err
				}
				fmt.Fprintf(s.Out, "---\n# Source: %s\n%s", obj.Source, b)
			}
			// Helm creates and runs these at their hook points, as
			// rendered here (`helm template` prints them too).
			for _, h := range res.HelmHooks {
				b, err := yaml.Marshal(h.Object.Object)
				if err != nil {
					return err
				}
				fmt.Fprintf(s.Out, "---\n# Source: %s (Helm hook)\n%s", h.Source, b)
			}
			fmt.Fprintln(s.ErrOut, summary)
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.Environment, "env", "e", "", "environment (selects values-ENV.yaml for Helm)")
	cmd.Flags().StringVarP(&o.Namespace, "namespace", "n", "default", "release namespace for Helm")
	cmd.Flags().StringVar(&o.ReleaseName, "release-name", "release", "Helm release name")
	cmd.Flags().StringArrayVarP(&o.ValuesFiles, "values", "f", nil, "Helm values file, relative to the chart (repeatable)")
	cmd.Flags().BoolVar(&o.AllowRemote, "allow-remote-bases", false, "let Kustomize fetch remote bases")
	addCapabilityFlags(cmd, &o.KubeVersion, &o.APIVersions)
	cmd.Flags().StringVar(&o.Root, "root", "", rootUsage)
	cmd.Flags().BoolVarP(&o.Quiet, "quiet", "q", false, "validate only; print a summary")
	return cmd
}

// addCapabilityFlags adds the flags that describe, for Helm, the cluster a
// chart is rendered for, as helm template names them.
func addCapabilityFlags(cmd *cobra.Command, kubeVersion *string, apiVersions *[]string) {
	cmd.Flags().StringVar(kubeVersion, "kube-version", "", "Kubernetes version Helm templates see (.Capabilities.KubeVersion; default Helm's; the agent uses its cluster's)")
	cmd.Flags().StringArrayVarP(apiVersions, "api-versions", "a", nil, "API version Helm templates see in .Capabilities.APIVersions, as group/version or group/version/Kind (repeatable; the agent uses its cluster's)")
}
