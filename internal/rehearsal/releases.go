package rehearsal

import (
	"context"
	"errors"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/release"
)

// pair is the two releases of a drill with their manifests.
type pair struct {
	from, to         *berthv1.Release
	fromObjs, toObjs []manifest.Object
}

// pickReleases resolves the release numbers: To defaults to the current
// release, From to the newest healthy release before To, as `berth
// rollback` and the agent choose.
func pickReleases(ctx context.Context, store *release.Store, app *berthv1.Application, from, to int64) (*berthv1.Release, *berthv1.Release, error) {
	if to == 0 {
		to = app.Status.CurrentRelease
		if to == 0 {
			return nil, nil, fmt.Errorf("%s/%s has no current release yet; pass --to", app.Namespace, app.Name)
		}
	}
	if from == 0 {
		rels, err := store.List(ctx, app.Namespace, app.Name)
		if err != nil {
			return nil, nil, err
		}
		prev := release.LastHealthy(rels, to)
		if prev == nil {
			return nil, nil, fmt.Errorf("%s/%s has no healthy release before release %d to roll back to; pass --from", app.Namespace, app.Name, to)
		}
		from = prev.Spec.Number
	}
	if from == to {
		return nil, nil, fmt.Errorf("--from and --to are both release %d; a drill needs two releases", from)
	}
	fromRel, err := store.Get(ctx, app.Namespace, app.Name, from)
	if err != nil {
		return nil, nil, err
	}
	toRel, err := store.Get(ctx, app.Namespace, app.Name, to)
	if err != nil {
		return nil, nil, err
	}
	return fromRel, toRel, nil
}

// readManifests reads both releases' manifests. A digest mismatch is
// returned as a *Failure: the agent would refuse that release too.
func readManifests(ctx context.Context, store *release.Store, p *pair) error {
	var err error
	if p.fromObjs, err = manifests(ctx, store, p.from); err != nil {
		return err
	}
	p.toObjs, err = manifests(ctx, store, p.to)
	return err
}

func manifests(ctx context.Context, store *release.Store, rel *berthv1.Release) ([]manifest.Object, error) {
	objs, err := store.Manifests(ctx, rel)
	if errors.Is(err, release.ErrDigestMismatch) {
		return nil, &Failure{Step: StepRead, Name: "read releases", Err: err, Reason: fmt.Sprintf(
			"release %d (%s): its stored manifests no longer match their recorded digest %s; the agent would refuse to roll back to it",
			rel.Spec.Number, rel.Name, rel.Spec.Digest)}
	}
	if err != nil {
		return nil, err
	}
	// Data hooks (berth.dev/hook Jobs) are not workload: the agent runs them
	// around a sync, and in a drill they would reach the real data.
	out := objs[:0]
	for _, o := range objs {
		if _, hook := o.Object.GetAnnotations()[berthv1.HookAnnotation]; !hook {
			out = append(out, o)
		}
	}
	return out, nil
}

// getApp reads the Application.
func getApp(ctx context.Context, c client.Client, key client.ObjectKey) (*berthv1.Application, error) {
	app := &berthv1.Application{}
	if err := c.Get(ctx, key, app); err != nil {
		return nil, fmt.Errorf("reading Application %s: %w", key, err)
	}
	return app, nil
}
