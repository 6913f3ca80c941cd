package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/apply"
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
			for _, e := range cs.Entries {
				if e.Action == apply.Skipped {
					fmt.Fprintf(s.ErrOut, "kept %s: %s\n", e.ID, e.Reason)
				}
			}
			fmt.Fprintf(s.Out, "berth installed in %s: %s\n", o.Install.Namespace, cs.Summary())
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Install.Namespace, "agent-namespace", o.Install.Namespace, "namespace of the agent")
	cmd.Flags().StringVar(&o.Install.Image, "image", o.Install.Image, "agent image")
	cmd.Flags().IntVar(&o.Install.Replicas, "replicas", o.Install.Replicas, "agent replicas (leader election makes one act)")
	cmd.Flags().StringVar(&o.Install.DefaultServiceAccount, "default-service-account", "", "service account impersonated when an Application names none")
	cmd.Flags().StringSliceVar(&o.Install.TrustedNamespaces, "trusted-namespaces", nil, "namespaces whose Applications may deploy into other namespaces (default: --agent-namespace); elsewhere an Application deploys only into its own")
	cmd.Flags().StringSliceVar(&o.Install.TenantNamespaces, "tenant-namespaces", nil, "bind the agent's impersonation of service accounts, and its Secret reads and writes, to these namespaces (with the trusted ones and its own) instead of cluster-wide; each must exist")
	cmd.Flags().BoolVar(&o.Apply, "apply", false, "apply to the cluster instead of printing")
	cmd.Flags().StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig for --apply")
	return cmd
}

// UninstallOptions are the flags of `berth uninstall`.
type UninstallOptions struct {
	Install install.Options
	connFlags
	Wait time.Duration
}

// NewCmdUninstall removes berth from a cluster, keeping what its
// Applications applied.
func NewCmdUninstall(s Streams) *cobra.Command {
	o := &UninstallOptions{Install: install.DefaultOptions()}
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove berth from the cluster, keeping everything its Applications applied",
		Long: "Remove berth from the cluster and keep everything its Applications applied: stop the agent (delete its\n" +
			"Deployment, wait for its pods to be gone), take berth's cleanup finalizer off every Application, then delete\n" +
			"the rest of the install, its CRDs (and with them every Application and Release) last.\n\n" +
			"To have the agent delete what an Application applied, delete that Application first, while the agent runs.\n" +
			"Do not `kubectl delete` the install's manifests: an agent still running would then prune what every\n" +
			"Application applied, or Applications would stay Terminating with no agent left. See docs/agent.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := o.Config()
			if err != nil {
				return err
			}
			res, err := install.Uninstall(cmd.Context(), cfg, o.Install, o.Wait)
			for _, id := range res.Deleted {
				fmt.Fprintf(s.Out, "deleted %s\n", id)
			}
			for _, id := range res.Kept {
				fmt.Fprintf(s.Out, "kept %s: berth install did not create it\n", id)
			}
			if res.Released > 0 {
				fmt.Fprintf(s.Out, "took the cleanup finalizer off %d Application(s): what they applied is kept\n", res.Released)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "berth uninstalled from %s; the objects its Applications applied are kept\n", o.Install.Namespace)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Install.Namespace, "agent-namespace", o.Install.Namespace, "namespace of the agent")
	cmd.Flags().DurationVar(&o.Wait, "wait", 2*time.Minute, "how long to wait for the agent's pods to stop")
	cmd.Flags().StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster")
	return cmd
}
