package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/install"
)

// InstallOptions are the flags of `berth install`.
type InstallOptions struct {
	Install install.Options
	connFlags
	Apply bool
}

// NewCmdInstall prints (or applies) the manifests that install the agent.
func NewCmdInstall(s Streams) *cobra.Command {
	o := &InstallOptions{Install: install.DefaultOptions()}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Print the manifests that install the agent (namespace, CRDs, least-privilege RBAC, Deployment, webhook Service), or --apply them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !o.Apply {
				b, err := install.Manifests(o.Install)
				if err != nil {
					return err
				}
				_, err = s.Out.Write(b)
				return err
			}
			cfg, _, err := o.Config()
			if err != nil {
				return err
			}
			cs, err := install.Apply(cmd.Context(), cfg, o.Install)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "berth installed in %s: %s\n", o.Install.Namespace, cs.Summary())
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Install.Namespace, "agent-namespace", o.Install.Namespace, "namespace of the agent")
	cmd.Flags().StringVar(&o.Install.Image, "image", o.Install.Image, "agent image")
	cmd.Flags().IntVar(&o.Install.Replicas, "replicas", o.Install.Replicas, "agent replicas (leader election makes one act)")
	cmd.Flags().StringVar(&o.Install.DefaultServiceAccount, "default-service-account", "", "service account impersonated when an Application names none")
	cmd.Flags().BoolVar(&o.Apply, "apply", false, "apply to the cluster instead of printing")
	cmd.Flags().StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig for --apply")
	return cmd
}
