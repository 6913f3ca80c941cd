package apps

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/controller/application"
	"github.com/berth-dev/berth/internal/helmrelease"
	"github.com/berth-dev/berth/internal/render"
	"github.com/berth-dev/berth/internal/source"
)

// DiffResult is what the next sync of an Application would change.
type DiffResult struct {
	Revision string
	Objects  []apply.ObjectDiff
	// Prune lists objects the sync would delete.
	Prune []string
	// Kept lists objects removed from Git that the sync would keep, each
	// with the reason (a claim, an annotation, not owned).
	Kept []string
	// PruneOff says the Application prunes nothing (syncPolicy.prune:
	// false): objects removed from Git are in Kept.
	PruneOff bool
}

// Diff fetches the Application's source like the agent, renders it and
// dry-runs it against the cluster with cfg's identity: nothing is written.
func Diff(ctx context.Context, c client.Client, cfg *rest.Config, key types.NamespacedName) (*DiffResult, error) {
	app := &berthv1.Application{}
	if err := c.Get(ctx, key, app); err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	var auth *source.Auth
	if ref := app.Spec.Source.SecretRef; ref != nil {
		s := &corev1.Secret{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: ref.Name}, s); err != nil {
			return nil, fmt.Errorf("reading credentials Secret %s: %w", ref.Name, err)
		}
		auth = source.AuthFromSecretData(s.Data)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	f := source.NewFetcher(source.Options{CacheDir: filepath.Join(cache, "berth", "cli", "snapshots")})
	snap, err := f.Fetch(ctx, app.Spec.Source.URL, source.Ref{Branch: app.Spec.Source.Branch, Tag: app.Spec.Source.Tag, Commit: app.Spec.Source.Commit}, auth)
	if err != nil {
		return nil, err
	}
	dir, err := render.Join(snap.Dir, app.Spec.Source.Path)
	if err != nil {
		return nil, err
	}
	opts, err := application.RenderOptions(app)
	if err != nil {
		return nil, err
	}
	opts.Root = snap.Dir
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating discovery client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	if kind, err := render.Detect(dir); err == nil && kind == render.Helm {
		// As the agent renders it: for this cluster, `lookup` reading it
		// (here with cfg's identity).
		if opts.KubeVersion, opts.APIVersions, err = render.ClusterCapabilities(dc); err != nil {
			return nil, err
		}
		opts.Lookup = helmrelease.Lookup(ctx, cfg, mapper)
		latest, err := helmrelease.Latest(cfg, app.Spec.Namespace, opts.ReleaseName)
		if err != nil {
			return nil, err
		}
		opts.IsUpgrade = latest != nil
	}
	res, err := render.Render(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	if err := application.Prepare(res.Objects, app, application.NamespacedFunc(mapper, res.Objects)); err != nil {
		return nil, err
	}
	// What the agent applies: the policy gate's output (image tags pinned
	// to the digests they resolve to, when the agent pins them, as the
	// digests recorded in the status say), without berth's hook Jobs.
	objs, err := application.GatedObjects(ctx, c, app, snap, res.Kind, res.Objects, res.HelmHooks, len(app.Status.Images) > 0)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	// The agent's guard: an object another Application declares, or
	// another Helm release installed, refuses the revision there too.
	// A user who may not read the other Application cannot tell: the
	// diff goes on, as the agent (which may) would decide.
	guard := application.ClaimGuard(c, app)
	mgr := apply.NewManager(dyn, mapper).WithGuard(func(ctx context.Context, live *unstructured.Unstructured) error {
		if err := guard(ctx, live); err != nil && !apierrors.IsForbidden(err) {
			return err
		}
		return nil
	})
	diffs, err := mgr.Diff(ctx, objs)
	if err != nil {
		return nil, err
	}
	out := &DiffResult{Revision: snap.Revision, Objects: diffs}
	next := map[string]bool{}
	for _, o := range objs {
		next[o.ID()] = true
	}
	var gone []apply.Ref
	for _, r := range app.Status.Inventory {
		ref := apply.Ref{GVK: schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}, Namespace: r.Namespace, Name: r.Name}
		if !next[ref.ID()] {
			gone = append(gone, ref)
		}
	}
	if !application.PruneOn(app) {
		out.PruneOff = true
		for _, r := range gone {
			out.Kept = append(out.Kept, r.ID()+" (syncPolicy.prune is false)")
		}
		return out, nil
	}
	// The prune's own rules decide, run without deleting: claims and
	// Namespaces kept, annotations honoured, objects gone already left out.
	popts := application.PruneOptions(c, app)
	popts.DryRun = true
	cs, err := mgr.Prune(ctx, gone, popts)
	if err != nil {
		return nil, err
	}
	for _, e := range cs.Entries {
		switch e.Action {
		case apply.Deleted:
			out.Prune = append(out.Prune, e.ID)
		case apply.Skipped:
			out.Kept = append(out.Kept, e.ID+" ("+e.Reason+")")
		}
	}
	return out, nil
}
