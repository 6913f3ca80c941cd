package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/sandbox"
)

// auditFlags are shared by the audit subcommands.
type auditFlags struct {
	Kubeconfig string
	Sandbox    string
	Output     string
}

func (f *auditFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to audit (default $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&f.Sandbox, "sandbox", "", "audit the local sandbox NAME instead (its kubeconfig, etcd and apiserver flags)")
	fs.StringVarP(&f.Output, "output", "o", "text", "output format: text or json")
}

// restConfig loads the cluster's client configuration.
func (f *auditFlags) restConfig() (*rest.Config, error) {
	if f.Output != "text" && f.Output != "json" {
		return nil, fmt.Errorf("--output %q: want text or json", f.Output)
	}
	if f.Sandbox != "" {
		return sandbox.RESTConfig(sandbox.DefaultStateDir(f.Sandbox))
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	return cfg, nil
}

// NewCmdAudit groups the live-cluster audits.
func NewCmdAudit(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Audit a live cluster: who can write where, and how it is hardened",
		Long: `Audit a live cluster. Exit codes: 0 nothing found, 1 findings (an over-privileged
CI/CD account, a failed hardening check), 2 the audit could not run.`,
	}
	cmd.AddCommand(NewCmdAuditRBAC(s), NewCmdAuditCluster(s))
	return cmd
}

// AuditRBACOptions are the flags of `berth audit rbac`.
type AuditRBACOptions struct {
	auditFlags
	CIPatterns    []string
	CIAllow       []string
	IncludeSystem bool
}

// NewCmdRBAC lists who can write in each namespace and flags CI/CD
// accounts with more than they need.
func NewCmdAuditRBAC(s Streams) *cobra.Command {
	o := &AuditRBACOptions{}
	cmd := &cobra.Command{
		Use:   "rbac",
		Short: "List every subject that can write in each namespace; flag over-privileged CI/CD accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.restConfig()
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("creating client: %w", err)}
			}
			rep, err := audit.RBAC(cmd.Context(), cs, audit.RBACOptions{CIPatterns: o.CIPatterns, CIAllowedResources: o.CIAllow, IncludeSystem: o.IncludeSystem})
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if o.Output == "json" {
				err = rep.WriteJSON(s.Out)
			} else {
				err = rep.WriteText(s.Out)
			}
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if len(rep.CI) > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("%d CI/CD account(s) hold more than they need", len(rep.CI))}
			}
			return nil
		},
	}
	o.bind(cmd.Flags())
	cmd.Flags().StringSliceVar(&o.CIPatterns, "ci-pattern", nil, "name pattern of CI/CD accounts, repeatable (default: built-in list such as ci-*, *deployer*, github-actions*, gitlab*, jenkins*)")
	cmd.Flags().StringSliceVar(&o.CIAllow, "ci-allow", nil, "resource a CI/CD account may write in its namespaces (deployments.apps, configmaps), repeatable")
	cmd.Flags().BoolVar(&o.IncludeSystem, "include-system", false, "also list system: subjects and kube-system ServiceAccounts")
	return cmd
}

// AuditClusterOptions are the flags of `berth audit cluster`.
type AuditClusterOptions struct {
	auditFlags
	EtcdEndpoints       []string
	EtcdPrefix          string
	AgentServiceAccount string
	CanaryNamespace     string
}

// NewCmdCluster checks the cluster's hardening.
func NewCmdAuditCluster(s Streams) *cobra.Command {
	o := &AuditClusterOptions{}
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Check hardening: Secrets encrypted at rest, anonymous auth, the agent's RBAC footprint",
		Long: `Check what can be checked about the cluster's hardening. Secrets at rest are
verified by writing a canary Secret and reading its etcd key when etcd is
reachable (--etcd-endpoint, or --sandbox), else from the apiserver's
encryption configuration when visible (a static kube-apiserver Pod, or the
sandbox's command line); otherwise the answer is "unknown" with the reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.restConfig()
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			opts := audit.ClusterOptions{EtcdEndpoints: o.EtcdEndpoints, EtcdPrefix: o.EtcdPrefix, AgentServiceAccount: o.AgentServiceAccount, CanaryNamespace: o.CanaryNamespace}
			if o.Sandbox != "" {
				st, err := sandbox.Load(sandbox.DefaultStateDir(o.Sandbox))
				if err != nil {
					return &ExitError{Code: 2, Err: err}
				}
				if len(opts.EtcdEndpoints) == 0 {
					opts.EtcdEndpoints = []string{"http://127.0.0.1:" + strconv.Itoa(st.Ports.EtcdClient)}
				}
				opts.APIServerArgs = st.Processes[sandbox.APIServer].Args
			}
			rep, err := audit.Cluster(cmd.Context(), cfg, opts)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if o.Output == "json" {
				err = rep.WriteJSON(s.Out)
			} else {
				err = rep.WriteText(s.Out)
			}
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if rep.Failed() {
				return &ExitError{Code: 1, Err: fmt.Errorf("cluster hardening checks failed")}
			}
			return nil
		},
	}
	o.bind(cmd.Flags())
	cmd.Flags().StringSliceVar(&o.EtcdEndpoints, "etcd-endpoint", nil, "etcd client URL (plain HTTP) for the canary check, repeatable")
	cmd.Flags().StringVar(&o.EtcdPrefix, "etcd-prefix", "/registry", "the apiserver's --etcd-prefix")
	cmd.Flags().StringVar(&o.AgentServiceAccount, "agent-service-account", audit.DefaultAgentServiceAccount, "the agent's ServiceAccount, namespace/name")
	cmd.Flags().StringVar(&o.CanaryNamespace, "canary-namespace", "default", "namespace of the short-lived canary Secret")
	return cmd
}
