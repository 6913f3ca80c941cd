package render

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/manifest"
)

// Kind is a renderer.
type Kind string

// Renderers.
const (
	Plain     Kind = "plain"
	Kustomize Kind = "kustomize"
	Helm      Kind = "helm"
)

// Options configure a render.
type Options struct {
	// Environment selects values-<environment>.yaml for Helm.
	Environment string
	// Namespace is the release namespace for Helm.
	Namespace string
	// ReleaseName for Helm; required for Helm.
	ReleaseName string
	// ValuesFiles for Helm, relative to the chart directory.
	ValuesFiles []string
	// Values are inline Helm values merged last.
	Values map[string]any
	// AllowRemoteBases lets Kustomize fetch remote bases (never files over
	// HTTP(S)).
	AllowRemoteBases bool
	// Root, when set, is the repository: Kustomize may load nothing outside
	// it (symlinks resolved).
	Root string
	// KubeVersion is the Kubernetes version Helm templates see
	// (Capabilities.KubeVersion); empty means Helm's default.
	KubeVersion string
	// APIVersions are added to the API versions Helm templates see
	// (Capabilities.APIVersions: "group/version" and
	// "group/version/Kind"); see ClusterCapabilities.
	APIVersions []string
	// Lookup, when set, is what Helm's `lookup` template function reads
	// the cluster with; unset, `lookup` finds nothing, as in `helm
	// template`.
	Lookup Lookup `json:"-"`
	// IsUpgrade renders a chart as Helm upgrades a release that exists
	// (.Release.IsUpgrade true, .Release.IsInstall false).
	IsUpgrade bool
	// Load bounds plain-YAML loading.
	Load manifest.LoadOptions
}

// Result is a rendered revision.
type Result struct {
	Kind    Kind
	Objects []manifest.Object
	// Helm holds what the agent needs to install the chart as a release.
	Helm *HelmChart
	// HelmHooks are the chart's hooks (helm.sh/hook): Helm creates them
	// itself while it installs, upgrades or rolls back, so they are not
	// in Objects and berth never applies them; the policy gate checks
	// them all the same.
	HelmHooks []manifest.Object
}

// ErrPathEscapes is returned when an Application's path leaves the repository.
var ErrPathEscapes = errors.New("path escapes the repository")

// Join returns root/p after checking that p stays inside root.
func Join(root, p string) (string, error) {
	clean := path.Clean("/" + filepath.ToSlash(p))
	if strings.Contains(p, "..") && clean != path.Clean("/"+p) {
		return "", fmt.Errorf("%q: %w", p, ErrPathEscapes)
	}
	for _, seg := range strings.Split(filepath.ToSlash(p), "/") {
		if seg == ".." {
			return "", fmt.Errorf("%q: %w", p, ErrPathEscapes)
		}
	}
	return filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(clean, "/"))), nil
}

// Detect tells which renderer a directory needs.
func Detect(dir string) (Kind, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", dir)
	}
	if exists(filepath.Join(dir, "Chart.yaml")) {
		return Helm, nil
	}
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if exists(filepath.Join(dir, n)) {
			return Kustomize, nil
		}
	}
	return Plain, nil
}

// absolute makes dir and opts.Root absolute: containment checks compare
// resolved paths, which are relative for a relative input.
func absolute(dir string, opts Options) (string, Options, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", opts, err
	}
	if opts.Root != "" {
		if opts.Root, err = filepath.Abs(opts.Root); err != nil {
			return "", opts, err
		}
	}
	return dir, opts, nil
}

// Render renders dir with the detected renderer.
func Render(ctx context.Context, dir string, opts Options) (*Result, error) {
	dir, opts, err := absolute(dir, opts)
	if err != nil {
		return nil, err
	}
	kind, err := Detect(dir)
	if err != nil {
		return nil, err
	}
	var res *Result
	switch kind {
	case Helm:
		res, err = renderHelm(ctx, dir, opts)
	case Kustomize:
		res, err = renderKustomize(dir, opts)
	default:
		var objs []manifest.Object
		objs, err = manifest.LoadDir(dir, opts.Load)
		res = &Result{Kind: Plain, Objects: objs}
	}
	if err != nil {
		return nil, err
	}
	if err := CheckDuplicates(res.Objects); err != nil {
		return nil, err
	}
	return res, nil
}

// CheckDuplicates refuses objects that name the same object twice. Render
// runs it; the agent runs it again once namespaces are filled in (a
// ConfigMap without a namespace and the same one in the destination
// namespace are one object).
func CheckDuplicates(objs []manifest.Object) error {
	seen := map[string]manifest.Source{}
	for _, o := range objs {
		id := o.ID()
		if prev, ok := seen[id]; ok {
			return &manifest.Error{Source: o.Source, Err: fmt.Errorf("%s is defined twice (also at %s)", id, prev)}
		}
		seen[id] = o.Source
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// within reports whether p is root or below it (both resolved).
func within(root, p string) bool {
	r, err := filepath.Rel(root, p)
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) && !filepath.IsAbs(r)
}

// RepoRoot returns the Git work tree holding dir (the nearest directory
// with a .git entry, symlinks resolved first), or "" outside Git. The CLI
// confines rendering to it, as the agent confines it to the fetched
// revision.
func RepoRoot(dir string) string {
	d, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	if resolved, err := filepath.EvalSymlinks(d); err == nil {
		d = resolved
	}
	for {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}
