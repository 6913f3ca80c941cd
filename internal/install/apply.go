package install

import (
	"context"
	"fmt"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/manifest"
)

// Apply installs (or upgrades) berth with cfg's identity, through the same
// staged server-side apply the agent uses.
func Apply(ctx context.Context, cfg *rest.Config, o Options) (apply.ChangeSet, error) {
	data, err := Manifests(o)
	if err != nil {
		return apply.ChangeSet{}, err
	}
	objs, err := manifest.Parse("berth-install.yaml", data)
	if err != nil {
		return apply.ChangeSet{}, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return apply.ChangeSet{}, fmt.Errorf("creating discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return apply.ChangeSet{}, fmt.Errorf("creating client: %w", err)
	}
	m := apply.NewManager(dyn, restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)))
	return m.Apply(ctx, objs)
}
