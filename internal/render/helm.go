package render

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/loader"
	rspb "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/client-go/discovery"

	"github.com/berth-dev/berth/internal/manifest"
)

// HelmChart is a loaded chart and the merged values to install it with.
type HelmChart struct {
	Chart       chart.Charter
	Values      map[string]any
	ReleaseName string
}

// LoadChart loads the chart in dir and its values as Render does, without
// rendering it: for an install of a render made before.
func LoadChart(dir string, opts Options) (*HelmChart, error) {
	dir, opts, err := absolute(dir, opts)
	if err != nil {
		return nil, err
	}
	return loadHelm(dir, opts)
}

func loadHelm(dir string, opts Options) (*HelmChart, error) {
	if opts.ReleaseName == "" {
		return nil, fmt.Errorf("helm chart in %s: a release name is required", dir)
	}
	// Helm's loader follows symlinks: a chart's {{ .Files.Get }} could
	// otherwise print any file the renderer can read.
	bound := opts.Root
	if bound == "" {
		bound = dir
	}
	if err := checkSymlinks(dir, bound); err != nil {
		return nil, err
	}
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, &manifest.Error{Source: manifest.Source{File: "Chart.yaml"}, Err: fmt.Errorf("loading chart: %w", err)}
	}
	if err := checkSchemas(ch, ""); err != nil {
		return nil, err
	}
	files := append([]string(nil), opts.ValuesFiles...)
	if opts.Environment != "" {
		env := "values-" + opts.Environment + ".yaml"
		if exists(filepath.Join(dir, env)) && !contains(files, env) {
			files = append(files, env)
		}
	}
	vals := map[string]any{}
	for _, f := range files {
		p, err := Join(dir, f)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, &manifest.Error{Source: manifest.Source{File: f}, Err: fmt.Errorf("reading values: %w", err)}
		}
		v, err := common.ReadValues(b)
		if err != nil {
			return nil, &manifest.Error{Source: manifest.Source{File: f}, Err: fmt.Errorf("invalid values: %w", err)}
		}
		vals = mergeMaps(vals, v)
	}
	if opts.Values != nil {
		vals = mergeMaps(vals, opts.Values)
	}
	return &HelmChart{Chart: ch, Values: vals, ReleaseName: opts.ReleaseName}, nil
}

// checkSymlinks fails when dir itself does not resolve inside bound, or a
// symlink under it does not resolve, resolves outside bound, or points at
// a directory. Helm's loader follows links, into directories too: a link
// to a directory would hide the links inside it from this check, and one
// to an ancestor makes Helm walk the chart again and again.
func checkSymlinks(dir, bound string) error {
	realBound, err := filepath.EvalSymlinks(bound)
	if err != nil {
		return fmt.Errorf("repository root: %w", err)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("chart directory: %w", err)
	}
	if !within(realBound, realDir) {
		return fmt.Errorf("chart directory %s resolves outside the repository (%s)", dir, bound)
	}
	return filepath.WalkDir(realDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		rel, _ := filepath.Rel(realDir, p)
		src := manifest.Source{File: filepath.ToSlash(rel)}
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			return &manifest.Error{Source: src, Err: fmt.Errorf("broken or looping symlink: %w", err)}
		}
		if !within(realBound, target) {
			return &manifest.Error{Source: src, Err: fmt.Errorf("symlink resolves outside the repository (%s)", bound)}
		}
		if fi, err := os.Stat(target); err == nil && fi.IsDir() {
			return &manifest.Error{Source: src, Err: errors.New("symlinked directories are not followed in a chart: link files, or copy the directory")}
		}
		return nil
	})
}

// Lookup reads the cluster for Helm's `lookup` template function, with
// its arguments and results: namespace "" is cluster-wide, name "" lists,
// and an object that does not exist is an empty map, not an error.
type Lookup func(apiVersion, kind, namespace, name string) (map[string]any, error)

// renderHelm templates the chart client-side, like `helm template`, but
// for opts.Lookup, which reads the cluster.
func renderHelm(ctx context.Context, dir string, opts Options) (*Result, error) {
	hc, err := loadHelm(dir, opts)
	if err != nil {
		return nil, err
	}
	cfg := action.NewConfiguration()
	if opts.Lookup != nil {
		// Helm's engine gives the chart its own lookup only when it
		// talks to the cluster for the whole install; a custom function
		// of the same name takes its place.
		cfg.CustomTemplateFuncs = template.FuncMap{"lookup": opts.Lookup}
	}
	install := action.NewInstall(cfg)
	install.DryRunStrategy = action.DryRunClient
	install.IsUpgrade = opts.IsUpgrade
	install.Replace = true
	install.IncludeCRDs = true
	install.ReleaseName = hc.ReleaseName
	install.Namespace = opts.Namespace
	if opts.KubeVersion != "" {
		kv, err := common.ParseKubeVersion(opts.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("kube version %q: %w", opts.KubeVersion, err)
		}
		install.KubeVersion = kv
	}
	install.APIVersions = opts.APIVersions
	r, err := install.RunWithContext(ctx, hc.Chart, hc.Values)
	if err != nil {
		return nil, &manifest.Error{Source: manifest.Source{File: "Chart.yaml"}, Err: fmt.Errorf("helm template: %w", err)}
	}
	rel, ok := r.(*rspb.Release)
	if !ok {
		return nil, fmt.Errorf("helm returned an unexpected release type %T", r)
	}
	objs, err := ParseHelmManifest(rel.Manifest)
	if err != nil {
		return nil, err
	}
	var hooks []manifest.Object
	for _, h := range rel.Hooks {
		if testOnly(h) {
			continue // run by `helm test` alone, which berth never runs
		}
		ho, err := manifest.Parse(h.Path, []byte(h.Manifest))
		if err != nil {
			return nil, err
		}
		for i := range ho {
			ho[i].Source.Line = 0
		}
		hooks = append(hooks, ho...)
	}
	return &Result{Kind: Helm, Objects: objs, Helm: hc, HelmHooks: hooks}, nil
}

var sourceComment = regexp.MustCompile(`(?m)^# Source: (.+)$`)

// ParseHelmManifest parses a Helm release manifest, naming each object's
// source after the "# Source:" comment Helm writes above it. A document
// without one is of the file before it: Helm writes a crds/ file whole,
// under one comment, with its own "---" separators.
func ParseHelmManifest(m string) ([]manifest.Object, error) {
	var out []manifest.Object
	src := "helm"
	for _, doc := range strings.Split(m, "\n---") {
		if s := sourceComment.FindStringSubmatch(doc); s != nil {
			src = s[1]
		}
		objs, err := manifest.Parse(src, []byte(doc))
		if err != nil {
			return nil, err
		}
		// Lines inside Helm's output are not lines of the template.
		for i := range objs {
			objs[i].Source.Line = 0
		}
		out = append(out, objs...)
	}
	return out, nil
}

func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bv, ok := v.(map[string]any); ok {
			if av, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(av, bv)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// ClusterCapabilities reads, through dc, what Helm's templates see of a
// cluster when Helm installs into it: its version and the API versions it
// serves (as Options.KubeVersion and Options.APIVersions). A chart that
// branches on .Capabilities then renders for a check as it will install.
func ClusterCapabilities(dc discovery.DiscoveryInterface) (kubeVersion string, apiVersions []string, err error) {
	v, err := dc.ServerVersion()
	if err != nil {
		return "", nil, fmt.Errorf("reading the cluster's version: %w", err)
	}
	set, err := action.GetVersionSet(dc)
	if err != nil {
		return "", nil, err
	}
	return v.GitVersion, set, nil
}

// testOnly reports whether h runs only for `helm test`.
func testOnly(h *rspb.Hook) bool {
	for _, e := range h.Events {
		if e != rspb.HookTest {
			return false
		}
	}
	return len(h.Events) > 0
}
