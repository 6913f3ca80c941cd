package render

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/internal/manifest"
)

// renderKustomize builds the kustomization in dir. Before kustomize runs,
// every kustomization it would load is read (see checkKustomization): a
// remote base, a file fetched over HTTP(S) or a directory outside
// opts.Root refuses the revision. Kustomize's own LoadRestrictionsRootOnly
// covers the files of one kustomization, not the directories its bases
// point at, and kustomize downloads any http(s) path it is given.
func renderKustomize(dir string, opts Options) (*Result, error) {
	if err := checkKustomization(dir, opts); err != nil {
		return nil, err
	}
	k := krusty.MakeKustomizer(&krusty.Options{
		LoadRestrictions: types.LoadRestrictionsRootOnly,
		PluginConfig:     types.DisabledPluginConfig(),
	})
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, &manifest.Error{Source: manifest.Source{File: "kustomization.yaml"}, Err: fmt.Errorf("kustomize build: %w", err)}
	}
	out, err := resMap.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize output: %w", err)
	}
	objs, err := manifest.Parse("kustomize:"+filepath.Base(dir), out)
	if err != nil {
		return nil, err
	}
	// Line numbers of kustomize output are not the user's; keep the file.
	for i := range objs {
		objs[i].Source.Line = 0
	}
	return &Result{Kind: Kustomize, Objects: objs}, nil
}

// kustomizationFiles are the names kustomize reads in a directory.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// kustomizationPaths is every field of a kustomization that names a file or
// a directory to load.
type kustomizationPaths struct {
	Resources             []string `json:"resources"`
	Bases                 []string `json:"bases"`
	Components            []string `json:"components"`
	Crds                  []string `json:"crds"`
	Configurations        []string `json:"configurations"`
	Generators            []string `json:"generators"`
	Transformers          []string `json:"transformers"`
	Validators            []string `json:"validators"`
	PatchesStrategicMerge []string `json:"patchesStrategicMerge"`
	Patches               []struct {
		Path string `json:"path"`
	} `json:"patches"`
	PatchesJSON6902 []struct {
		Path string `json:"path"`
	} `json:"patchesJson6902"`
	Replacements []struct {
		Path string `json:"path"`
	} `json:"replacements"`
	OpenAPI struct {
		Path string `json:"path"`
	} `json:"openapi"`
	ConfigMapGenerator []generatorPaths `json:"configMapGenerator"`
	SecretGenerator    []generatorPaths `json:"secretGenerator"`
	HelmCharts         []struct {
		Repo string `json:"repo"`
	} `json:"helmCharts"`
}

type generatorPaths struct {
	Files []string `json:"files"`
	Envs  []string `json:"envs"`
	Env   string   `json:"env"`
}

// all returns every path the kustomization names (a generator's
// "key=path" as path), and whether each may be a directory (a base).
func (k kustomizationPaths) all() (paths []string, dirs map[string]bool) {
	dirs = map[string]bool{}
	for _, p := range append(append(append([]string(nil), k.Resources...), k.Bases...), k.Components...) {
		dirs[p] = true
		paths = append(paths, p)
	}
	paths = append(paths, k.Crds...)
	paths = append(paths, k.Configurations...)
	paths = append(paths, k.Generators...)
	paths = append(paths, k.Transformers...)
	paths = append(paths, k.Validators...)
	paths = append(paths, k.PatchesStrategicMerge...)
	for _, p := range k.Patches {
		paths = append(paths, p.Path)
	}
	for _, p := range k.PatchesJSON6902 {
		paths = append(paths, p.Path)
	}
	for _, p := range k.Replacements {
		paths = append(paths, p.Path)
	}
	paths = append(paths, k.OpenAPI.Path)
	for _, g := range append(append([]generatorPaths(nil), k.ConfigMapGenerator...), k.SecretGenerator...) {
		for _, f := range g.Files {
			if _, p, ok := strings.Cut(f, "="); ok {
				f = p
			}
			paths = append(paths, f)
		}
		paths = append(paths, g.Envs...)
		paths = append(paths, g.Env)
	}
	for _, h := range k.HelmCharts {
		paths = append(paths, h.Repo)
	}
	return paths, dirs
}

// checkKustomization reads the kustomization in dir and, through its local
// bases, every kustomization kustomize would load. Unless
// opts.AllowRemoteBases, a remote base or an http(s) file is refused; with
// opts.Root set, so is a path that leaves it (symlinks resolved).
func checkKustomization(dir string, opts Options) error {
	root := ""
	if opts.Root != "" {
		r, err := filepath.EvalSymlinks(opts.Root)
		if err != nil {
			return fmt.Errorf("repository root: %w", err)
		}
		root = r
	}
	seen := map[string]bool{}
	var visit func(d string) error
	visit = func(d string) error {
		resolved, err := filepath.EvalSymlinks(d)
		if err != nil {
			return nil // kustomize reports what is missing
		}
		if seen[resolved] {
			return nil
		}
		seen[resolved] = true
		file := ""
		for _, n := range kustomizationFiles {
			if _, err := os.Stat(filepath.Join(resolved, n)); err == nil {
				file = filepath.Join(d, n)
				break
			}
		}
		if file == "" {
			return nil
		}
		rel, _ := filepath.Rel(dir, file)
		refuse := func(format string, args ...any) error {
			return &manifest.Error{Source: manifest.Source{File: rel}, Err: fmt.Errorf(format, args...)}
		}
		b, err := os.ReadFile(file) //nolint:gosec // inside the checked root
		if err != nil {
			return err
		}
		var k kustomizationPaths
		if err := yaml.Unmarshal(b, &k); err != nil {
			return refuse("invalid kustomization: %w", err)
		}
		paths, dirs := k.all()
		for _, p := range paths {
			if p == "" {
				continue
			}
			if isRemote(p) {
				if opts.AllowRemoteBases && dirs[p] {
					continue
				}
				if dirs[p] {
					return refuse("remote base %q is not allowed (the Application must allow remote bases)", p)
				}
				return refuse("%q would be downloaded: files over the network are not allowed", p)
			}
			target := p
			if !filepath.IsAbs(target) {
				target = filepath.Join(d, target)
			}
			if root != "" {
				resolved, err := filepath.EvalSymlinks(target)
				if err != nil {
					continue // missing: kustomize says so
				}
				if !within(root, resolved) {
					return refuse("%q leaves the repository", p)
				}
			}
			if dirs[p] {
				if fi, err := os.Stat(target); err == nil && fi.IsDir() {
					if err := visit(target); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	return visit(dir)
}

// isRemote reports whether r is a URL or a Git location kustomize would
// fetch (https://..., git::..., user@host:org/repo, github.com/...).
func isRemote(r string) bool {
	if strings.Contains(r, "://") || strings.HasPrefix(r, "git::") {
		return true
	}
	for _, h := range []string{"github.com/", "gitlab.com/", "bitbucket.org/"} {
		if strings.HasPrefix(r, h) {
			return true
		}
	}
	// scp-like user@host:path
	if at := strings.Index(r, "@"); at > 0 {
		if colon := strings.Index(r[at:], ":"); colon > 0 && !strings.Contains(r[:at], "/") {
			return true
		}
	}
	return false
}
