package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/clio"
	"github.com/berth-dev/berth/internal/controller/application"
	"github.com/berth-dev/berth/internal/policy"
	"github.com/berth-dev/berth/internal/render"
)

// CheckOptions are the flags of `berth check`.
type CheckOptions struct {
	// Path is the directory to check.
	Path string
	// Output is text, json or sarif.
	Output string
	// FailOn is the lowest severity of an enforce-mode violation that fails
	// the check.
	FailOn string
	// PolicyFile overrides the repository's .berth/policy.yaml.
	PolicyFile string
	// Resolve resolves image tags through the registries as the agent does.
	Resolve bool
	// Environment, Namespace and ReleaseName render Helm charts as the
	// Application would.
	Environment, Namespace, ReleaseName string
	// ValuesFiles are Helm values files relative to the chart, as in
	// spec.helm.valuesFiles.
	ValuesFiles []string
	// KubeVersion and APIVersions are the cluster Helm templates see.
	KubeVersion string
	APIVersions []string
	// PullSecrets are files holding .dockerconfigjson documents.
	PullSecrets []string
	// Root confines rendering (see RenderOptions.Root).
	Root string
}

// NewCmdCheck runs the policy gates over a directory of manifests, as the
// agent would before applying it.
func NewCmdCheck(s Streams) *cobra.Command {
	o := &CheckOptions{}
	cmd := &cobra.Command{
		Use:   "check PATH",
		Short: "Run the policy gates over a directory of manifests (exit 0 clean, 1 violations, 2 error)",
		Long: `Run every policy gate (image references, pod security, secrets, RBAC,
resources and probes) over the manifests under PATH and print each
violation with its rule ID, object, file:line and how to fix it. The policy
is the .berth/policy.yaml at the root of the Git work tree holding PATH (or
--root), the one the agent reads; one deeper in the tree is not read, by
either (a warning names it). Outside Git, the first .berth/policy.yaml in
PATH or its parents. With --resolve, image tags are resolved to digests
through the registries as the agent does (image-digest-required then judges
what the agent would apply). See docs/policy.md.

Exit codes: 0 no enforce-mode violation at or above --fail-on; 1 at least
one; 2 the check could not run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			return o.run(cmd, s)
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "output format: text, json or sarif")
	cmd.Flags().StringVarP(&o.Environment, "env", "e", "", "environment, as in the Application (selects values-ENV.yaml for Helm)")
	cmd.Flags().StringVarP(&o.Namespace, "namespace", "n", "default", "release namespace for Helm")
	cmd.Flags().StringVar(&o.ReleaseName, "release-name", "release", "Helm release name")
	addCapabilityFlags(cmd, &o.KubeVersion, &o.APIVersions)
	cmd.Flags().StringArrayVarP(&o.ValuesFiles, "values", "f", nil, "Helm values file, relative to the chart, as in spec.helm.valuesFiles (repeatable)")
	cmd.Flags().StringVar(&o.FailOn, "fail-on", string(policy.SeverityLow), "lowest severity of an enforce-mode violation that fails the check: critical, high, medium or low")
	cmd.Flags().BoolVar(&o.Resolve, "resolve", false, "resolve image tags to digests through the registries, as the agent does (default: no network)")
	cmd.Flags().StringSliceVar(&o.PullSecrets, "pull-secret", nil, "with --resolve: a .dockerconfigjson file with registry credentials, repeatable")
	cmd.Flags().StringVar(&o.Root, "root", "", rootUsage)
	cmd.Flags().StringVar(&o.PolicyFile, "policy", "", "policy file (default: "+policy.ConfigFile+" at the Git root, or --root)")
	return cmd
}

func (o *CheckOptions) run(cmd *cobra.Command, s Streams) error {
	failOn, err := policy.ParseSeverity(o.FailOn)
	if err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("--fail-on: %w", err)}
	}
	switch o.Output {
	case "text", "json", "sarif":
	default:
		return &ExitError{Code: 2, Err: fmt.Errorf("--output %q: want text, json or sarif", o.Output)}
	}
	res, err := loadRevision(cmd.Context(), o.Path, render.Options{Environment: o.Environment, Namespace: o.Namespace, ReleaseName: o.ReleaseName, ValuesFiles: o.ValuesFiles,
		KubeVersion: o.KubeVersion, APIVersions: o.APIVersions, Root: rootOf(o.Root, o.Path)})
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	cfg, err := o.policy(s)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	in := policy.GateInput{Objects: res.Objects, CheckOnly: res.HelmHooks, Config: cfg}
	if o.Resolve {
		var secrets [][]byte
		for _, f := range o.PullSecrets {
			b, err := os.ReadFile(f)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("reading pull secret: %w", err)}
			}
			secrets = append(secrets, b)
		}
		if in.Resolver, err = policy.NewResolver(cfg.Images, secrets...); err != nil {
			return &ExitError{Code: 2, Err: err}
		}
	}
	g, err := policy.Gate(cmd.Context(), in)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	if g.Held != nil {
		return &ExitError{Code: 2, Err: g.Held}
	}
	rep := g.Report
	rep.RefineLines(func(file string) ([]byte, error) { return os.ReadFile(filepath.Join(o.Path, filepath.FromSlash(file))) })
	switch o.Output {
	case "json":
		err = rep.WriteJSON(s.Out)
	case "sarif":
		err = rep.WriteSARIF(s.Out, clio.Version())
	default:
		err = rep.WriteText(s.Out)
	}
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	if failing := rep.Failing(failOn); len(failing) > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("%d policy violation(s) at or above %s", len(failing), failOn)}
	}
	return nil
}

// rootUsage describes the --root flag of render and check.
const rootUsage = "repository root: Kustomize bases and files, and Helm chart symlinks, must stay inside it (default: the Git work tree holding PATH; outside Git, PATH itself)"

// policy reads the policy the agent would: --policy, else the .berth/policy.yaml
// at the root of the Git work tree holding PATH (or --root). A file deeper
// in the tree is not read, by the agent either: a warning names it.
// Outside Git, the first .berth/policy.yaml in PATH or its parents.
func (o *CheckOptions) policy(s Streams) (policy.Config, error) {
	if o.PolicyFile != "" {
		return policy.ReadFile(o.PolicyFile)
	}
	root := o.Root
	if root == "" {
		root = render.RepoRoot(o.Path)
	}
	if root == "" {
		if dir, ok := policy.FindFile(o.Path); ok {
			return policy.LoadFile(dir)
		}
		return policy.Config{}, nil
	}
	at := o.Path
	if resolved, err := filepath.EvalSymlinks(at); err == nil {
		at = resolved // as RepoRoot resolved the root
	}
	if found, ok := policy.FindFileWithin(root, at); ok {
		if abs, err := filepath.Abs(root); err == nil && found != abs {
			fmt.Fprintf(s.ErrOut, "warning: %s is not read: only %s at the repository's root is, by berth check and the agent alike (per-app settings go in the Application's spec.policy)\n",
				filepath.Join(found, filepath.FromSlash(policy.ConfigFile)), policy.ConfigFile)
		}
	}
	return policy.LoadFile(root)
}

// rootOf is the --root of path: the flag, else the Git work tree holding
// path, else (outside Git) path itself: a checkout without .git, or a
// directory unpacked from an archive, is confined too.
func rootOf(flag, path string) string {
	if flag != "" {
		return flag
	}
	if root := render.RepoRoot(path); root != "" {
		return root
	}
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		return filepath.Dir(path)
	}
	return path
}

// loadRevision renders the objects under path the way the agent does:
// plain YAML, Kustomize or Helm (package render).
func loadRevision(ctx context.Context, path string, opts render.Options) (*render.Result, error) {
	res, err := render.Render(ctx, path, opts)
	if err == nil {
		err = application.CheckHooks(res.Kind, res.Objects)
	}
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", path, err)
	}
	return res, nil
}
