package application

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/types"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/render"
	"github.com/berth-dev/berth/internal/renderworker"
)

// helmRender is an Application's last render of a chart, kept as JSON
// (a fraction of the memory of decoded objects), and what it was rendered
// from.
type helmRender struct {
	key            string
	objects, hooks []renderedObject
}

type renderedObject struct {
	json   []byte
	source manifest.Source
}

// renderKey names what a chart's or overlay's render depends on besides the
// cluster's objects: the Application (its UID: one deleted and created
// again under its name starts afresh), the commit and path, the render
// options (values, values files, environment, namespace, release name),
// the account its lookups read as, the capabilities Helm's templates see
// (API versions in any order), and the last `berth sync` request, which
// renders again. Other spec fields (interval, sync policy) are not in it.
func renderKey(app *berthv1.Application, sha, user string, opts render.Options) (string, error) {
	apis := slices.Clone(opts.APIVersions)
	slices.Sort(apis)
	b, err := json.Marshal(struct {
		UID, URL, Path, Commit, User, SyncRequest string
		Environment, Namespace, ReleaseName       string
		ValuesFiles                               []string
		Values                                    map[string]any
		KubeVersion                               string
		APIVersions                               []string
	}{string(app.UID), app.Spec.Source.URL, app.Spec.Source.Path, sha, user, app.Annotations[berthv1.SyncRequestedAnnotation],
		opts.Environment, opts.Namespace, opts.ReleaseName, opts.ValuesFiles, opts.Values, opts.KubeVersion, apis})
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// cachedHelmRender returns app's last render of the chart in dir when it
// was rendered from key, with the chart loaded again (not kept: a chart
// can be large). A chart is rendered once per commit and spec, as Helm
// renders it once per upgrade: its random values (randAlphaNum) and its
// lookups are evaluated then, not again at every full pass, which would
// make each pass a new Helm release of the same commit. An agent that
// restarts renders again, once.
func (r *Reconciler) cachedHelmRender(app *berthv1.Application, key, dir string, opts render.Options) (*render.Result, error) {
	if key == "" {
		return nil, nil
	}
	v, ok := r.helmRenders.Load(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})
	if !ok || v.(helmRender).key != key {
		return nil, nil
	}
	kept := v.(helmRender)
	hc, err := render.LoadChart(dir, opts)
	if err != nil {
		return nil, err
	}
	res := &render.Result{Kind: render.Helm, Helm: hc}
	if res.Objects, err = decodeRendered(kept.objects); err != nil {
		return nil, err
	}
	if res.HelmHooks, err = decodeRendered(kept.hooks); err != nil {
		return nil, err
	}
	return res, nil
}

// keepHelmRender records res, rendered from key, as app's last render.
func (r *Reconciler) keepHelmRender(app *berthv1.Application, key string, res *render.Result) error {
	objs, err := encodeRendered(res.Objects)
	if err != nil {
		return err
	}
	hooks, err := encodeRendered(res.HelmHooks)
	if err != nil {
		return err
	}
	r.helmRenders.Store(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, helmRender{key: key, objects: objs, hooks: hooks})
	return nil
}

func encodeRendered(objs []manifest.Object) ([]renderedObject, error) {
	out := make([]renderedObject, 0, len(objs))
	for _, o := range objs {
		b, err := json.Marshal(o.Object.Object)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.Source.File, err)
		}
		out = append(out, renderedObject{json: b, source: o.Source})
	}
	return out, nil
}

func decodeRendered(kept []renderedObject) ([]manifest.Object, error) {
	var out []manifest.Object
	for _, k := range kept {
		o, err := manifest.FromJSON(k.json, k.source)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// renderStop is a render stopped at a limit of the worker it ran in, and
// what it was rendered from.
type renderStop struct {
	key string
	err error
}

// renderDir renders dir: plain YAML in this process (bounded by its
// loader's limits), a chart or an overlay through r.Renderer when set.
func (r *Reconciler) renderDir(ctx context.Context, kind render.Kind, dir string, opts render.Options) (*render.Result, error) {
	if r.Renderer == nil || kind == render.Plain {
		return render.Render(ctx, dir, opts)
	}
	return r.Renderer.Render(ctx, dir, opts)
}

// keepRenderStop remembers a render stopped at a memory or time limit:
// the same commit, values and spec would go past it again, so they are
// not rendered again (every poll would cost the limit once more) until
// one of them changes or `berth sync` asks.
func (r *Reconciler) keepRenderStop(app *berthv1.Application, key string, err error) {
	var le *renderworker.LimitError
	if key != "" && errors.As(err, &le) {
		r.renderStops.Store(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, renderStop{key: key, err: err})
	}
}

// renderStopped returns the error of app's last render when it was
// stopped at a limit and key has not changed since.
func (r *Reconciler) renderStopped(app *berthv1.Application, key string) error {
	v, ok := r.renderStops.Load(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})
	if !ok {
		return nil
	}
	if s := v.(renderStop); s.key == key {
		return fmt.Errorf("%w; it is not rendered again until the commit or the Application's spec changes, or `berth sync` asks", s.err)
	}
	r.renderStops.Delete(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})
	return nil
}
