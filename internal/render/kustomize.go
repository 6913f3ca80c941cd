package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
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
// "key=path" as path), whether each may be a directory (a base, or a
// directory of plugin configs), and which name plugin configs (generators,
// transformers, validators: files whose own fields name paths).
func (k kustomizationPaths) all() (paths []string, dirs, plugins map[string]bool) {
	dirs, plugins = map[string]bool{}, map[string]bool{}
	for _, p := range append(append(append([]string(nil), k.Resources...), k.Bases...), k.Components...) {
		dirs[p] = true
		paths = append(paths, p)
	}
	for _, p := range append(append(append([]string(nil), k.Generators...), k.Transformers...), k.Validators...) {
		dirs[p], plugins[p] = true, true
		paths = append(paths, p)
	}
	paths = append(paths, k.Crds...)
	paths = append(paths, k.Configurations...)
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
		paths = append(paths, g.paths()...)
	}
	for _, h := range k.HelmCharts {
		paths = append(paths, h.Repo)
	}
	return paths, dirs, plugins
}

func (g generatorPaths) paths() []string {
	var out []string
	for _, f := range g.Files {
		if _, p, ok := strings.Cut(f, "="); ok {
			f = p
		}
		out = append(out, f)
	}
	out = append(out, g.Envs...)
	return append(out, g.Env)
}

// pluginPathKeys are the fields of kustomize's built-in plugin configs
// (ConfigMapGenerator, PatchTransformer, HelmChartInflationGenerator ...)
// that name a file, a directory or a location to load.
var pluginPathKeys = map[string]bool{"files": true, "envs": true, "env": true, "path": true, "paths": true,
	"repo": true, "chartHome": true, "valuesFile": true, "additionalValuesFiles": true}

// pluginConfigPaths returns every path the plugin configs in data name,
// at any depth, a "key=path" as path.
func pluginConfigPaths(data []byte) ([]string, error) {
	var out []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				walk(c, k)
			}
		case []any:
			for _, c := range v {
				walk(c, key)
			}
		case string:
			if pluginPathKeys[key] {
				if _, p, ok := strings.Cut(v, "="); ok && key == "files" {
					v = p
				}
				out = append(out, v)
			}
		}
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		walk(doc, "")
	}
}

// checkKustomization reads the kustomization in dir and, through its local
// bases and plugin configs, every kustomization and file kustomize would
// load. Unless opts.AllowRemoteBases, a remote base is refused, and so is a
// base that is not in the repository (kustomize would try it as a remote
// one); an http(s) file always is. With opts.Root set, so is a path that
// leaves it. Relative paths are resolved from the real directory of the
// kustomization that names them, as kustomize does.
func checkKustomization(dir string, opts Options) error {
	root := ""
	if opts.Root != "" {
		r, err := filepath.EvalSymlinks(opts.Root)
		if err != nil {
			return fmt.Errorf("repository root: %w", err)
		}
		root = r
	}
	type visited struct {
		dir       string
		asPlugins bool
	}
	seen := map[visited]bool{}
	// asPlugins: d was named as a directory of plugin configs (under
	// generators, transformers or validators): kustomize builds it and
	// loads what it outputs as plugin configs, so every file its
	// resources (and its bases' resources) name is checked as one.
	var visit func(d string, asPlugins bool) error
	visit = func(d string, asPlugins bool) error {
		resolved, err := filepath.EvalSymlinks(d)
		if err != nil {
			return nil // kustomize reports what is missing
		}
		if seen[visited{resolved, asPlugins}] {
			return nil
		}
		seen[visited{resolved, asPlugins}] = true
		file := ""
		for _, n := range kustomizationFiles {
			if _, err := os.Stat(filepath.Join(resolved, n)); err == nil {
				file = filepath.Join(resolved, n)
				break
			}
		}
		if file == "" {
			return nil
		}
		rel, _ := filepath.Rel(dir, filepath.Join(d, filepath.Base(file)))
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
		// check refuses path p, named in the kustomization (or in one of
		// its plugin configs), and returns where it is on disk ("" when
		// it is not).
		check := func(p string, base bool) (string, error) {
			if isRemote(p) {
				if opts.AllowRemoteBases && base {
					return "", nil
				}
				if base {
					return "", refuse("remote base %q is not allowed (the Application must allow remote bases)", p)
				}
				return "", refuse("%q would be downloaded: files over the network are not allowed", p)
			}
			target := p
			if !filepath.IsAbs(target) {
				target = filepath.Join(resolved, target)
			}
			onDisk, err := filepath.EvalSymlinks(target)
			if err != nil {
				if base && !opts.AllowRemoteBases && errors.Is(err, fs.ErrNotExist) {
					return "", refuse("%q does not exist in the repository (and kustomize would try to fetch it as a remote base, which is not allowed)", p)
				}
				return "", nil // missing: kustomize says so
			}
			if root != "" && !within(root, onDisk) {
				return "", refuse("%q leaves the repository", p)
			}
			return onDisk, nil
		}
		paths, dirs, plugins := k.all()
		for _, p := range paths {
			if p == "" {
				continue
			}
			// In a directory of plugin configs, what its resources
			// (and bases) name is one; its patches, generators' files
			// and the like are what they are anywhere.
			plugin := plugins[p] || (asPlugins && dirs[p])
			if plugin && strings.Contains(p, "\n") {
				// An inline plugin config: its fields name the paths.
				if err := checkPluginConfig([]byte(p), check, refuse); err != nil {
					return err
				}
				continue
			}
			onDisk, err := check(p, dirs[p])
			if err != nil || onDisk == "" {
				if err != nil {
					return err
				}
				continue
			}
			fi, err := os.Stat(onDisk)
			switch {
			case err != nil:
			case fi.IsDir() && dirs[p]:
				if err := visit(onDisk, plugin); err != nil {
					return err
				}
			case plugin && fi.Mode().IsRegular():
				data, err := os.ReadFile(onDisk) //nolint:gosec // inside the checked root
				if err != nil {
					return err
				}
				if err := checkPluginConfig(data, check, refuse); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return visit(dir, false)
}

// checkPluginConfig checks every path a plugin config names, as files.
func checkPluginConfig(data []byte, check func(string, bool) (string, error), refuse func(string, ...any) error) error {
	paths, err := pluginConfigPaths(data)
	if err != nil {
		return refuse("invalid plugin configuration: %w", err)
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		if _, err := check(p, false); err != nil {
			return err
		}
	}
	return nil
}

// isRemote reports whether r is a URL or a Git location kustomize would
// fetch (https://..., git::..., user@host:org/repo, github.com/...).
func isRemote(r string) bool {
	lr := strings.ToLower(r)
	if strings.Contains(lr, "://") || strings.HasPrefix(lr, "git::") {
		return true
	}
	for _, h := range []string{"github.com", "gitlab.com", "bitbucket.org"} {
		if strings.HasPrefix(lr, h+"/") || strings.HasPrefix(lr, h+":") {
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
