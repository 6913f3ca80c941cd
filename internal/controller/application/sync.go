package application

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/helmrelease"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/release"
	"github.com/berth-dev/berth/internal/render"
	"github.com/berth-dev/berth/internal/source"
)

// revision is a rendered, labelled commit.
type revision struct {
	sha     string
	kind    render.Kind
	objects []manifest.Object
	helm    *render.HelmChart
	// helmHooks are the chart's Helm hooks, for the policy gate only.
	helmHooks []manifest.Object
	// hooks are the data hook Jobs, kept out of objects.
	hooks hooks
	// snapshot is what the pre-sync hook took before this revision.
	snapshot *berthv1.DataSnapshot
	// encoded and digest are release.Encode(all()), once encode ran.
	encoded []byte
	digest  string
	// hookedDigest is stateDigest's, for a chart with Helm hooks.
	hookedDigest string
	// moved: a new commit, or the applied one rendered anew (see
	// reconcile); set before sync.
	moved bool
}

// encode returns the digest of what a release of rev records, encoding it
// once per reconcile: the release recorded after the sync reuses it.
func (rev *revision) encode() string {
	if rev.digest == "" {
		data, digest, err := release.Encode(rev.all())
		if err != nil {
			return ""
		}
		rev.encoded, rev.digest = data, digest
	}
	return rev.digest
}

// stateDigest identifies what a sync of rev puts in the cluster: the
// release's digest and, for a chart with hooks, the hooks too. Helm runs
// them and the release does not record them, but a change to a hook alone
// is a new Helm release all the same. The Helm release's description
// names this digest; it is computed once per reconcile.
func (rev *revision) stateDigest() string {
	d := rev.encode()
	if len(rev.helmHooks) == 0 || d == "" {
		return d // for a chart: all() is its objects (no data hooks)
	}
	if rev.hookedDigest == "" {
		rev.hookedDigest = manifestDigest(append(append([]manifest.Object(nil), rev.objects...), rev.helmHooks...))
	}
	return rev.hookedDigest
}

// all returns what a release of rev records: its objects and its hooks.
func (rev *revision) all() []manifest.Object {
	if len(rev.hooks) == 0 {
		return rev.objects
	}
	out := append([]manifest.Object(nil), rev.objects...)
	for _, k := range []string{hookPreSync, hookRestore} {
		if h, ok := rev.hooks[k]; ok {
			out = append(out, h)
		}
	}
	return out
}

// RenderOptions returns the render options of app.
func RenderOptions(app *berthv1.Application) (render.Options, error) {
	opts := render.Options{Environment: app.Spec.Environment, Namespace: app.Spec.Namespace, ReleaseName: app.Name}
	if h := app.Spec.Helm; h != nil {
		if h.ReleaseName != "" {
			opts.ReleaseName = h.ReleaseName
		}
		opts.ValuesFiles = h.ValuesFiles
		if h.Values != nil && len(h.Values.Raw) > 0 {
			if err := json.Unmarshal(h.Values.Raw, &opts.Values); err != nil {
				return opts, fmt.Errorf("spec.helm.values: %w", err)
			}
		}
	}
	return opts, nil
}

func (r *Reconciler) render(ctx context.Context, app *berthv1.Application, snap *source.Snapshot) (*revision, error) {
	dir, err := render.Join(snap.Dir, app.Spec.Source.Path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if sm, ok := snap.SubmoduleAt(app.Spec.Source.Path); ok {
			// Not errPathMissing: fetching again will not bring it.
			return nil, fmt.Errorf("%q is in the Git submodule %q (%s) at commit %s, and berth does not fetch submodules: point the Application at that repository instead", app.Spec.Source.Path, sm.Path, sm.URL, short(snap.Revision))
		}
		return nil, fmt.Errorf("%w: %q does not exist at commit %s", errPathMissing, app.Spec.Source.Path, short(snap.Revision))
	}
	opts, err := RenderOptions(app)
	if err != nil {
		return nil, err
	}
	opts.Root = snap.Dir
	var lookupErr error
	key, helmKey := "", ""
	kind, _ := render.Detect(dir) // an error is the render's to report
	if kind == render.Helm {
		if opts.KubeVersion, opts.APIVersions, err = r.helmCapabilities(); err != nil {
			return nil, err
		}
		// As Helm's upgrade renders it: `lookup` reads the cluster, as
		// the Application's account, so a value a chart keeps across
		// upgrades (a generated password) is kept.
		// Bounded: a render waits for each lookup, and the render
		// worker's time limit leaves them out.
		lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		defer cancel()
		lookup := helmrelease.Lookup(lctx, r.impersonatedConfig(app), r.Mapper)
		opts.Lookup = func(apiVersion, kind, namespace, name string) (map[string]any, error) {
			m, err := lookup(apiVersion, kind, namespace, name)
			if err != nil && lookupErr == nil {
				lookupErr = err
			}
			return m, err
		}
	}
	if kind == render.Helm || kind == render.Kustomize {
		if key, err = renderKey(app, snap.Revision, r.impersonatedUser(app), opts); err != nil {
			return nil, err
		}
		if kind == render.Helm {
			helmKey = key
		}
	}
	res, err := r.cachedHelmRender(app, helmKey, dir, opts)
	if err != nil {
		return nil, prefixErr(app.Spec.Source.Path, err)
	}
	if res == nil {
		if err := r.renderStopped(app, key); err != nil {
			return nil, prefixErr(app.Spec.Source.Path, err)
		}
		if helmKey != "" {
			// An upgrade when the release exists, as Helm decides it.
			latest, err := helmrelease.Latest(r.impersonatedConfig(app), app.Spec.Namespace, opts.ReleaseName)
			if err != nil {
				return nil, clusterReadErr(err)
			}
			// A release a deleted Application's cleanup left uninstalling
			// or uninstalled is installed afresh (see helmrelease.Upgrade).
			opts.IsUpgrade = latest != nil && latest.Status != "uninstalling" && latest.Status != "uninstalled"
		}
		if res, err = r.renderDir(ctx, kind, dir, opts); err != nil {
			if lookupErr != nil {
				if cerr := clusterReadErr(lookupErr); errors.Is(cerr, errClusterRead) {
					return nil, cerr
				}
			}
			r.keepRenderStop(app, key, err)
			return nil, prefixErr(app.Spec.Source.Path, err)
		}
		if helmKey != "" {
			if err := r.keepHelmRender(app, helmKey, res); err != nil {
				return nil, err
			}
		}
	}
	if res.Kind == render.Plain {
		// Name files from the repository root, as users see them in Git.
		for i := range res.Objects {
			res.Objects[i].Source.File = path.Join(strings.Trim(app.Spec.Source.Path, "/"), res.Objects[i].Source.File)
		}
	}
	namespaced := NamespacedFunc(r.Mapper, res.Objects)
	for _, h := range res.HelmHooks {
		// As Helm creates them: in the release's namespace.
		if h.Object.GetNamespace() == "" && namespaced(h.Object.GroupVersionKind()) {
			h.Object.SetNamespace(app.Spec.Namespace)
		}
	}
	if err := Prepare(res.Objects, app, namespaced); err != nil {
		if res.Kind == render.Plain {
			return nil, err // files named from the root already
		}
		return nil, prefixErr(app.Spec.Source.Path, err)
	}
	return &revision{sha: snap.Revision, kind: res.Kind, objects: res.Objects, helm: res.Helm, helmHooks: res.HelmHooks}, nil
}

// lookupTimeout bounds the lookups of one Helm render together.
const lookupTimeout = time.Minute

// errPathMissing: the Application's path is not in the commit fetched. For
// a new Application the commit may be older than the push that adds the
// path (a reference listing is reused for a moment), so it is fetched
// again soon, not at the next poll.
var errPathMissing = errors.New("path not found")

// prefixErr names the file of a manifest error from the repository root.
func prefixErr(p string, err error) error {
	var me *manifest.Error
	if errors.As(err, &me) && p != "" && !strings.Contains(me.Source.File, ":") {
		c := *me
		c.Source.File = path.Join(strings.Trim(p, "/"), me.Source.File)
		return &c
	}
	return err
}

// NamespacedFunc tells whether a kind is namespaced, asking mapper and, for
// kinds defined by CRDs in the same revision, the CRD's scope. Unknown kinds
// count as namespaced; validation rejects them.
func NamespacedFunc(mapper meta.RESTMapper, objs []manifest.Object) func(schema.GroupVersionKind) bool {
	crdScope := map[schema.GroupKind]bool{}
	for _, o := range objs {
		if o.Object.GetKind() == "CustomResourceDefinition" {
			g, _, _ := unstructured.NestedString(o.Object.Object, "spec", "group")
			k, _, _ := unstructured.NestedString(o.Object.Object, "spec", "names", "kind")
			s, _, _ := unstructured.NestedString(o.Object.Object, "spec", "scope")
			crdScope[schema.GroupKind{Group: g, Kind: k}] = s == "Namespaced"
		}
	}
	return func(gvk schema.GroupVersionKind) bool {
		if ns, ok := crdScope[gvk.GroupKind()]; ok {
			return ns
		}
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if rm, ok := mapper.(meta.ResettableRESTMapper); ok && meta.IsNoMatchError(err) {
			// A kind installed since discovery was read (an operator's
			// CRDs): read it again. Taken for namespaced, a cluster-scoped
			// object would be recorded under a namespace it does not have.
			rm.Reset()
			mapping, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if err != nil {
			return true
		}
		return mapping.Scope.Name() == meta.RESTScopeNameNamespace
	}
}

// Prepare stamps berth's ownership labels on every object and puts
// namespaced objects that name no namespace into the destination namespace.
// A cluster-scoped object loses a namespace it names (the API server
// ignores it), so the inventory records it as it lives. Objects that are
// then the same object are refused.
func Prepare(objs []manifest.Object, app *berthv1.Application, namespaced func(schema.GroupVersionKind) bool) error {
	for _, o := range objs {
		u := o.Object
		switch ns := namespaced(u.GroupVersionKind()); {
		case !ns:
			u.SetNamespace("")
		case u.GetNamespace() == "":
			u.SetNamespace(app.Spec.Namespace)
		}
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[berthv1.OwnerNameLabel] = LabelValue(app.Name)
		labels[berthv1.OwnerNamespaceLabel] = app.Namespace
		u.SetLabels(labels)
	}
	return render.CheckDuplicates(objs)
}

// LabelValue fits s into a label value (at most 63 characters).
func LabelValue(s string) string {
	if len(s) <= 63 {
		return s
	}
	return s[:63]
}

// sync applies rev and prunes what the previous inventory held and rev
// does not. Nothing is written when validation fails.
func (r *Reconciler) sync(ctx context.Context, app *berthv1.Application, mgr *apply.Manager, rev *revision) (apply.ChangeSet, error) {
	var cs apply.ChangeSet
	var err error
	// What the revision may prune: what the Application recorded and, for
	// a chart, what its Helm release holds (see below).
	held := app.Status.Inventory
	// A new commit, or the applied one rendered anew (other values), is
	// a new Helm release; the same manifests again are a drift heal.
	if rev.kind == render.Helm && (rev.moved || app.Status.LastHandledSyncRequest != app.Annotations[berthv1.SyncRequestedAnnotation]) {
		if cs, err = mgr.Validate(ctx, rev.objects); err != nil {
			return cs, err
		}
		// The Helm history, not the (possibly stale) cached status, says
		// whether this revision is already released.
		// A revision that renders the same manifests as the deployed release
		// (a commit to another app of the repository) is not a new release.
		digest := rev.stateDigest()
		desc := "berth: revision " + rev.sha + " manifests " + digest
		cfg := r.impersonatedConfig(app)
		latest, err := helmrelease.Latest(cfg, app.Spec.Namespace, rev.helm.ReleaseName)
		if err != nil {
			return cs, err
		}
		// Helm's upgrade deletes nothing (helmrelease.Upgrade): berth's
		// prune does, by its rules, and so must know every object the
		// release holds, recorded or not (written by an upgrade whose
		// apply then failed, or by an earlier Application of this name).
		if latest != nil {
			if other := r.releaseOwner(ctx, app, latest.Manifest); other != "" {
				return cs, fmt.Errorf("%w: Helm release %s in namespace %s holds the objects of Application %s, which still exists; two Applications cannot share a release (each would upgrade it with its own chart in turn): set spec.helm.releaseName",
					errReleaseTaken, rev.helm.ReleaseName, app.Spec.Namespace, other)
			}
			held = union(held, releaseObjects(latest.Manifest))
		}
		if latest == nil || !strings.HasSuffix(latest.Description, " manifests "+digest) || latest.Status != "deployed" ||
			app.Status.LastHandledSyncRequest != app.Annotations[berthv1.SyncRequestedAnnotation] {
			// Helm installs the objects berth rendered, checked and pinned,
			// not a second render of its own (random values would differ,
			// and images would run by tag until berth's apply below).
			lit, err := helmrelease.Literal(rev.helm.Chart, rev.objects, rev.helmHooks)
			if err != nil {
				return cs, err
			}
			// Helm installs the CRDs of crds/ directories on a first
			// install only, and berth's apply comes after Helm's: an
			// upgrade that adds one, with resources of its kind, would
			// fail for ever. They are applied first (and waited for).
			var crds []manifest.Object
			for _, o := range rev.objects {
				if helmrelease.ChartCRD(o.Source.File) {
					crds = append(crds, o)
				}
			}
			if len(crds) > 0 {
				if _, err := mgr.Apply(ctx, crds); err != nil {
					return cs, err
				}
			}
			// Helm's upgrade creates what is missing: a removed TTL Job
			// runs again, under what may be the same release.
			r.forgetTTLJobs(app)
			if _, err = helmrelease.Upgrade(ctx, cfg, lit, rev.helm.Values, helmrelease.Options{
				Namespace: app.Spec.Namespace, ReleaseName: rev.helm.ReleaseName, Description: desc, MaxHistory: helmHistory(app),
			}); err != nil {
				if !helmrelease.Unavailable(err) {
					// A hook that failed or timed out: not retried
					// soon, as each try is one more Helm revision.
					err = fmt.Errorf("%w: %w", errHelmFailed, err)
				}
				return cs, err
			}
		}
		// Heal any drift over Helm's apply (after an upgrade, usually
		// nothing to write).
		objs := rev.objects
		if !rev.moved {
			objs = withoutRemovedTTLJobs(ctx, mgr, objs)
		}
		if _, err = mgr.Apply(ctx, objs); err != nil {
			// The release holds the revision's objects, and what it
			// dropped is still there: recorded, both are pruned once Git
			// no longer has them.
			app.Status.Inventory = union(held, inventoryOf(rev.objects))
			return cs, err
		}
	} else {
		objs := rev.objects
		if !rev.moved {
			objs = withoutRemovedTTLJobs(ctx, mgr, objs)
		}
		if cs, err = mgr.Apply(ctx, objs); err != nil {
			keepWritten(app, cs)
			return cs, err
		}
	}

	next := inventoryOf(rev.objects)
	if gone := subtract(held, next); PruneOn(app) && len(gone) > 0 {
		pcs, perr := mgr.Prune(ctx, refsOf(gone), r.pruneOptions(app))
		cs.Entries = append(cs.Entries, pcs.Entries...)
		var kept []string
		for _, e := range pcs.Entries {
			if e.Action == apply.Skipped {
				kept = append(kept, e.ID+" ("+e.Reason+")")
			}
		}
		if len(kept) > 0 {
			r.Recorder.Eventf(app, corev1.EventTypeNormal, "PruneSkipped", "kept objects removed from Git: %s", strings.Join(kept, "; "))
		}
		if perr != nil {
			// The revision is applied: its objects are recorded (pruned
			// once Git drops them too), and so is all that was to go, for
			// the retry's prune; what went already is then passed over.
			app.Status.Inventory = union(next, gone)
			return cs, perr
		}
	}
	app.Status.Inventory = next
	return cs, nil
}

// errHelmFailed: Helm's upgrade failed for a reason a retry would meet
// again (a chart hook that failed or timed out, an object refused).
var errHelmFailed = errors.New("helm upgrade failed")

// errReleaseTaken: the Helm release an Application would install is
// another Application's.
var errReleaseTaken = errors.New("helm release belongs to another Application")

// releaseOwner returns the other Application ("namespace/name") whose
// objects the Helm release manifest m holds, when that Application still
// exists and still installs that release (its release name and
// destination); "" when m holds only app's objects, or objects no
// Application labelled (a release someone made with helm, taken over as
// its objects are), or those of an Application that is gone or moved on.
func (r *Reconciler) releaseOwner(ctx context.Context, app *berthv1.Application, m string) string {
	opts, err := RenderOptions(app)
	if err != nil {
		return ""
	}
	objs, err := manifest.Parse("helm release", []byte(m))
	if err != nil {
		return "" // not a manifest berth wrote: no Application's
	}
	var reader client.Reader = r.Client
	if r.APIReader != nil {
		reader = r.APIReader
	}
	asked := map[types.NamespacedName]bool{}
	for _, o := range objs {
		l := o.Object.GetLabels()
		key := types.NamespacedName{Namespace: l[berthv1.OwnerNamespaceLabel], Name: l[berthv1.OwnerNameLabel]}
		if key.Name == "" || (key.Name == LabelValue(app.Name) && key.Namespace == app.Namespace) || asked[key] {
			continue
		}
		asked[key] = true
		other := &berthv1.Application{}
		err := reader.Get(ctx, key, other)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			// Refused rather than risked.
			return key.String()
		}
		if theirs, oerr := RenderOptions(other); oerr != nil || (other.Status.Renderer == string(render.Helm) &&
			theirs.ReleaseName == opts.ReleaseName && other.Spec.Namespace == app.Spec.Namespace) {
			return key.String()
		}
	}
	return ""
}

// keepWritten adds to app's inventory the objects an apply that failed
// wrote all the same (its CRDs and Namespaces before a rejection, the
// writes before one failed). They carry app's labels: recorded, they are
// watched, and pruned once Git no longer has them, instead of left
// behind.
func keepWritten(app *berthv1.Application, cs apply.ChangeSet) {
	have := map[string]bool{}
	for _, r := range app.Status.Inventory {
		have[refKey(r)] = true
	}
	added := false
	for _, e := range cs.Entries {
		if e.Live == nil || (e.Action != apply.Created && e.Action != apply.Configured) {
			continue
		}
		gvk := e.Live.GroupVersionKind()
		ref := berthv1.ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: e.Live.GetNamespace(), Name: e.Live.GetName()}
		if !have[refKey(ref)] {
			have[refKey(ref)] = true
			app.Status.Inventory = append(app.Status.Inventory, ref)
			added = true
		}
	}
	if added {
		sort.Slice(app.Status.Inventory, func(i, j int) bool { return refKey(app.Status.Inventory[i]) < refKey(app.Status.Inventory[j]) })
	}
}

// pruneOptions are the protections of every prune of app's objects: only
// what app owns, berth.dev/prune honoured, and a Namespace kept while
// another Application deploys into it.
func (r *Reconciler) pruneOptions(app *berthv1.Application) apply.PruneOptions {
	return PruneOptions(r.Client, app)
}

// PruneOptions are the rules app's prune follows (see apply.PruneOptions):
// its owner labels, berth's prune annotation, and a Namespace kept while
// another Application, listed through c, deploys into it.
func PruneOptions(c client.Reader, app *berthv1.Application) apply.PruneOptions {
	return apply.PruneOptions{
		OwnerLabels:     map[string]string{berthv1.OwnerNameLabel: LabelValue(app.Name), berthv1.OwnerNamespaceLabel: app.Namespace},
		PruneAnnotation: berthv1.PruneAnnotation,
		KeepNamespace: func(ctx context.Context, name string) (string, error) {
			var list berthv1.ApplicationList
			if err := c.List(ctx, &list); err != nil {
				return "", fmt.Errorf("listing Applications before deleting Namespace %s: %w", name, err)
			}
			for _, a := range list.Items {
				if a.Spec.Namespace == name && a.DeletionTimestamp.IsZero() && (a.Namespace != app.Namespace || a.Name != app.Name) {
					return fmt.Sprintf("Application %s/%s deploys into it", a.Namespace, a.Name), nil
				}
			}
			return "", nil
		},
	}
}

// PruneOn reports whether app's syncs and rollbacks prune at all
// (syncPolicy.prune, on by default).
func PruneOn(app *berthv1.Application) bool {
	return app.Spec.SyncPolicy.Prune == nil || *app.Spec.SyncPolicy.Prune
}

func inventoryOf(objs []manifest.Object) []berthv1.ObjectRef {
	out := make([]berthv1.ObjectRef, 0, len(objs))
	for _, o := range objs {
		gvk := o.Object.GroupVersionKind()
		out = append(out, berthv1.ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind,
			Namespace: o.Object.GetNamespace(), Name: o.Object.GetName()})
	}
	sort.Slice(out, func(i, j int) bool { return refKey(out[i]) < refKey(out[j]) })
	return out
}

func refKey(r berthv1.ObjectRef) string {
	return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
}

func subtract(old, next []berthv1.ObjectRef) []berthv1.ObjectRef {
	keep := map[string]bool{}
	// A cluster-scoped object (no namespace once prepared) is the same
	// object under any namespace an older inventory recorded it with; and
	// one recorded without a namespace is the same as next's under one
	// (a kind taken for namespaced while discovery failed: the API server
	// drops the namespace it was given).
	cluster := map[string]bool{}
	named := map[string]bool{}
	for _, r := range next {
		keep[refKey(r)] = true
		gkn := r.Group + "/" + r.Kind + "/" + r.Name
		named[gkn] = true
		if r.Namespace == "" {
			cluster[gkn] = true
		}
	}
	var out []berthv1.ObjectRef
	for _, r := range old {
		gkn := r.Group + "/" + r.Kind + "/" + r.Name
		if keep[refKey(r)] || cluster[gkn] || (r.Namespace == "" && named[gkn]) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// union returns the refs of a and b, each once, sorted.
func union(a, b []berthv1.ObjectRef) []berthv1.ObjectRef {
	seen := map[string]bool{}
	var out []berthv1.ObjectRef
	for _, r := range append(append([]berthv1.ObjectRef(nil), a...), b...) {
		if !seen[refKey(r)] {
			seen[refKey(r)] = true
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return refKey(out[i]) < refKey(out[j]) })
	return out
}

// releaseObjects returns the objects of a Helm release's manifest (its
// hooks are apart); none when it does not parse.
func releaseObjects(m string) []berthv1.ObjectRef {
	if strings.TrimSpace(m) == "" {
		return nil
	}
	objs, err := manifest.Parse("helm release manifest", []byte(m))
	if err != nil {
		return nil
	}
	return inventoryOf(objs)
}

func refsOf(inv []berthv1.ObjectRef) []apply.Ref {
	out := make([]apply.Ref, 0, len(inv))
	for _, r := range inv {
		out = append(out, apply.Ref{GVK: schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}, Namespace: r.Namespace, Name: r.Name})
	}
	return out
}

// manifestDigest identifies the rendered objects of a revision: the digest
// its Release records.
func manifestDigest(objs []manifest.Object) string {
	_, d, err := release.Encode(objs)
	if err != nil {
		return ""
	}
	return d
}
