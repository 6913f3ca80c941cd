package application

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/policy"
	"github.com/berth-dev/berth/internal/render"
	"github.com/berth-dev/berth/internal/source"
)

// ConditionPolicy reports policy warnings (True: none).
const ConditionPolicy = "PolicyCompliant"

// gateOutcome is what the policy gate decided for a revision.
type gateOutcome struct {
	result *policy.GateResult
	// held says the sync waits (digests required, tags unresolved).
	held error
	// rejected says the revision is refused (enforce violations, bad policy).
	rejected error
	reason   string
}

// gate runs berth's policy gates on a rendered revision: the repository's
// policy file (see policyFile) merged with spec.policy, image tags resolved
// to digests with the Application's pull secrets, tag-moved checked
// against the images of the applied revision.
func (r *Reconciler) gate(ctx context.Context, app *berthv1.Application, snap *source.Snapshot, rev *revision) gateOutcome {
	out, ignored := runGate(ctx, r.Client, app, snap, rev, !r.SkipImageResolution, r.digests)
	if out.result == nil {
		return out
	}
	var notes []string
	if ignored != "" {
		notes = append(notes, fmt.Sprintf("%s is not read: only the repository's root %s is (per-app settings go in spec.policy)", ignored, policy.ConfigFile))
	}
	r.recordPolicy(app, out.result.Report, notes...)
	return out
}

// GatedObjects returns what a sync of app at snap would apply, computed as
// the agent computes it from the rendered objects (objects, and a chart's
// helmHooks, which are only checked): the policy gate run on them, image
// tags pinned to digests (resolved with the Application's pull secrets,
// read through c, unless resolve is false; the applied revision keeps the
// digests it was applied with), berth's hook Jobs split off. A revision the
// gate would reject or hold, or that would be refused as empty, is an
// error saying so.
func GatedObjects(ctx context.Context, c client.Reader, app *berthv1.Application, snap *source.Snapshot, kind render.Kind, objects, helmHooks []manifest.Object, resolve bool) ([]manifest.Object, error) {
	rev := &revision{sha: snap.Revision, kind: kind, objects: objects, helmHooks: helmHooks}
	out, _ := runGate(ctx, c, app, snap, rev, resolve, nil)
	switch {
	case out.rejected != nil:
		return nil, fmt.Errorf("the agent would reject revision %s (%s): %w", short(snap.Revision), out.reason, out.rejected)
	case out.held != nil:
		return nil, fmt.Errorf("revision %s: image tags could not be resolved to digests from here, as the agent resolves them (%s): %w", short(snap.Revision), out.reason, out.held)
	}
	objs, _, err := splitHooks(kind, out.result.Objects)
	if err != nil {
		return nil, err
	}
	if err := emptyRevision(app, &revision{objects: objs}); err != nil {
		return nil, fmt.Errorf("the agent would reject revision %s (EmptyRevision): %w", short(snap.Revision), err)
	}
	return objs, nil
}

// runGate is gate without its records: it also returns the name of a
// policy file it did not read (see policyFile).
func runGate(ctx context.Context, c client.Reader, app *berthv1.Application, snap *source.Snapshot, rev *revision, resolve bool, cache *policy.DigestCache) (gateOutcome, string) {
	repoCfg, ignored, err := policyFile(app, snap)
	if err != nil {
		return gateOutcome{rejected: err, reason: "PolicyInvalid"}, ignored
	}
	var appCfg policy.Config
	if app.Spec.Policy != nil && len(app.Spec.Policy.Raw) > 0 {
		if appCfg, err = policy.Parse(app.Spec.Policy.Raw); err != nil {
			return gateOutcome{rejected: fmt.Errorf("spec.policy: %w", err), reason: "PolicyInvalid"}, ignored
		}
	}
	cfg := policy.Merge(repoCfg, appCfg)
	var resolver *policy.Resolver
	if resolve {
		var secrets [][]byte
		for _, ref := range app.Spec.ImagePullSecrets {
			s := &corev1.Secret{}
			if err := c.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: ref.Name}, s); err != nil {
				return gateOutcome{held: fmt.Errorf("reading image pull Secret %s: %w", ref.Name, err), reason: "ImagePullSecretUnavailable"}, ignored
			}
			secrets = append(secrets, s.Data[corev1.DockerConfigJsonKey])
		}
		if resolver, err = policy.NewResolver(cfg.Images, secrets...); err != nil {
			return gateOutcome{rejected: err, reason: "ImagePullSecretInvalid"}, ignored
		}
		if cache != nil {
			resolver.Cache, resolver.CacheScope = cache, snap.Revision
		}
	}
	prev := map[string]string{}
	for _, p := range app.Status.Images {
		prev[p.Tag] = p.Digest
	}
	if resolver != nil && snap.Revision == app.Status.LastAppliedRevision {
		resolver.Sticky = prev
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	g, err := policy.Gate(rctx, policy.GateInput{Objects: rev.objects, CheckOnly: rev.helmHooks, Config: cfg, Resolver: resolver, PreviousTags: prev})
	if err != nil {
		return gateOutcome{rejected: err, reason: "PolicyInvalid"}, ignored
	}
	out := gateOutcome{result: g}
	switch {
	case g.Held != nil:
		out.held, out.reason = g.Held, "ImagesUnresolved"
	case g.Report.Blocked():
		out.rejected, out.reason = errors.New(g.Report.Summary()), "PolicyViolation"
	}
	return out, ignored
}

// policyFile reads the repository's policy: the .berth/policy.yaml at its
// root, the one `berth check` reads in CI. A file deeper in the tree is not
// read: the root's is the one a platform team guards (CODEOWNERS), and one
// an app team adds next to its manifests must not loosen it (per-app
// settings go in spec.policy). One found between the Application's path
// and the root is returned by name, for a warning. None is an empty
// policy; an invalid one is an error.
func policyFile(app *berthv1.Application, snap *source.Snapshot) (cfg policy.Config, ignored string, err error) {
	if cfg, err = policy.LoadFile(snap.Dir); err != nil {
		return cfg, "", err
	}
	dir, err := render.Join(snap.Dir, app.Spec.Source.Path)
	if err != nil {
		return cfg, "", err
	}
	if found, ok := policy.FindFileWithin(snap.Dir, dir); ok && found != filepath.Clean(snap.Dir) {
		if rel, err := filepath.Rel(snap.Dir, found); err == nil {
			ignored = path.Join(filepath.ToSlash(rel), policy.ConfigFile)
		}
	}
	return cfg, ignored, nil
}

// recordPolicy turns warnings into a condition, an event (on change) and
// a metric.
func (r *Reconciler) recordPolicy(app *berthv1.Application, rep *policy.Report, notes ...string) {
	// The last evaluated revision's counts, only: a rule no longer
	// violated leaves no series.
	r.metrics.PolicyViolations.DeletePartialMatch(prometheus.Labels{"namespace": app.Namespace, "name": app.Name})
	counts := map[string]int{}
	for _, v := range rep.Violations {
		counts[v.RuleID+"\x00"+string(v.Mode)]++
	}
	for k, n := range counts {
		rule, mode, _ := strings.Cut(k, "\x00")
		r.metrics.PolicyViolations.WithLabelValues(app.Namespace, app.Name, rule, mode).Set(float64(n))
	}
	warnings := rep.Warnings()
	var parts []string
	for _, v := range warnings {
		parts = append(parts, fmt.Sprintf("[%s] %s: %s", v.RuleID, v.Object, v.Message))
	}
	for _, e := range rep.ExpiredExceptions() {
		parts = append(parts, fmt.Sprintf("expired exception for %s on %s (expired %s)", e.Rule, e.Object, e.Expires))
	}
	parts = append(parts, notes...)
	sort.Strings(parts)
	if len(parts) == 0 {
		setCondition(app, ConditionPolicy, metav1.ConditionTrue, "NoWarnings", "every policy gate passed")
		return
	}
	msg := fmt.Sprintf("%d policy warning(s): %s", len(parts), strings.Join(parts, "; "))
	prev := meta.FindStatusCondition(app.Status.Conditions, ConditionPolicy)
	if prev == nil || prev.Message != msg {
		r.Recorder.Event(app, corev1.EventTypeWarning, "PolicyWarnings", truncate(msg, 1000))
	}
	setCondition(app, ConditionPolicy, metav1.ConditionFalse, "Warnings", msg)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func pinsOf(g *policy.GateResult) []berthv1.ImagePin {
	if g == nil || g.Resolution == nil {
		return nil
	}
	out := make([]berthv1.ImagePin, 0, len(g.Resolution.Tags))
	for t, d := range g.Resolution.Tags {
		out = append(out, berthv1.ImagePin{Tag: t, Digest: d})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out
}
