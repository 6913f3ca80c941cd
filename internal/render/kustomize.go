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

// renderKustomize builds the kustomization in dir. Loading is restricted to
// the repository root's subtree: a kustomization can use ../base inside
// the repository, but nothing outside it.
func renderKustomize(dir string, opts Options) (*Result, error) {
	if !opts.AllowRemoteBases {
		if err := refuseRemote(dir); err != nil {
			return nil, err
		}
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

// refuseRemote walks every kustomization reachable in dir's tree and fails
// on a resource, base or component that is a URL.
func refuseRemote(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || (d.Name() != "kustomization.yaml" && d.Name() != "kustomization.yml" && d.Name() != "Kustomization") {
			return nil
		}
		b, err := os.ReadFile(p) //nolint:gosec // snapshots are written by berth and never change once published
		if err != nil {
			return err
		}
		var k struct {
			Resources  []string `json:"resources"`
			Bases      []string `json:"bases"`
			Components []string `json:"components"`
		}
		if err := yaml.Unmarshal(b, &k); err != nil {
			rel, _ := filepath.Rel(dir, p)
			return &manifest.Error{Source: manifest.Source{File: rel}, Err: fmt.Errorf("invalid kustomization: %w", err)}
		}
		for _, r := range append(append(k.Resources, k.Bases...), k.Components...) {
			if isRemote(r) {
				rel, _ := filepath.Rel(dir, p)
				return &manifest.Error{Source: manifest.Source{File: rel}, Err: fmt.Errorf("remote base %q is not allowed (the Application must allow remote bases)", r)}
			}
		}
		return nil
	})
}

func isRemote(r string) bool {
	return strings.Contains(r, "://") || strings.HasPrefix(r, "git@") || strings.HasPrefix(r, "github.com/") ||
		strings.HasPrefix(r, "gitlab.com/") || strings.HasPrefix(r, "bitbucket.org/")
}
