package helmrelease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/kube"
	"helm.sh/helm/v4/pkg/release"
	"helm.sh/helm/v4/pkg/release/common"
	rspb "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/client-go/rest"

	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/failpoint"
)

// Release is the outcome of an install or upgrade.
type Release struct {
	Name        string
	Version     int
	Status      string
	Description string
	Manifest    string
	// DeleteHooks counts its pre-delete and post-delete hooks, which
	// Uninstall runs.
	DeleteHooks int
}

func fromV1(rel *rspb.Release) Release {
	r := Release{Name: rel.Name, Version: rel.Version, Manifest: rel.Manifest, DeleteHooks: deleteHooks(rel)}
	if rel.Info != nil {
		r.Status, r.Description = rel.Info.Status.String(), rel.Info.Description
	}
	return r
}

// Latest returns the newest revision of release name, or nil when the
// release does not exist.
func Latest(cfg *rest.Config, namespace, name string) (*Release, error) {
	ac, err := configure(cfg, namespace)
	if err != nil {
		return nil, err
	}
	h := action.NewHistory(ac)
	h.Max = 1
	rs, err := h.Run(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading helm history of %s: %w", name, err)
	}
	var latest *Release
	for _, r := range rs {
		if rel, ok := r.(*rspb.Release); ok && (latest == nil || rel.Version > latest.Version) {
			v := fromV1(rel)
			latest = &v
		}
	}
	return latest, nil
}

// DefaultMaxHistory is how many revisions of a release Helm keeps when
// the caller does not say.
const DefaultMaxHistory = 10

// ErrHookFailed: one of the chart's own hooks failed (a Helm rollback's).
var ErrHookFailed = errors.New("a hook of the chart failed")

// Unavailable reports whether err, from a Helm operation, is the API
// server failing to answer (unreachable, overloaded, a webhook it cannot
// call): a hook that failed so did not run, and a retry may pass. A hook
// that ran and failed, or ran out of time, did run, and would again.
func Unavailable(err error) bool {
	return apply.Transient(err) && !errors.Is(err, context.DeadlineExceeded)
}

// settle marks the latest revision of release name failed, with cause as
// its description, when an operation that returned cause left it pending,
// and reports whether it did. Helm leaves a rollback's revision pending
// when its hooks (or the build of the target's objects) fail: what comes
// after them records an outcome.
func settle(ac *action.Configuration, name string, cause error) (bool, error) {
	v, err := failPending(ac, name, func(common.Status) string {
		desc := "berth: " + cause.Error()
		if len(desc) > 1000 {
			desc = desc[:1000] + "..."
		}
		return desc
	})
	return v > 0, err
}

// Options configure Upgrade.
type Options struct {
	Namespace   string
	ReleaseName string
	Description string
	// MaxHistory bounds stored revisions; default DefaultMaxHistory.
	MaxHistory int
	// Timeout bounds hooks; default 5m.
	Timeout time.Duration
}

func configure(cfg *rest.Config, namespace string) (*action.Configuration, error) {
	ac := action.NewConfiguration(action.ConfigurationSetLogger(slog.New(slog.NewTextHandler(io.Discard, nil)).Handler()))
	if err := ac.Init(&getter{cfg: cfg, namespace: namespace}, namespace, "secret"); err != nil {
		return nil, fmt.Errorf("initialising helm: %w", err)
	}
	return ac, nil
}

// Upgrade installs the chart as release opts.ReleaseName in opts.Namespace,
// or upgrades it when it exists. Changes are applied with server-side apply
// (forcing conflicts, so berth's own drift corrections never block it).
// Objects the previous release held and this one does not are not deleted:
// that is the caller's prune, by its rules. ch is to be Literal's copy of
// the chart berth rendered: its values were checked against the chart's
// schemas then, and are not again. Objects that exist are adopted
// (Helm's TakeOwnership), whoever made them: the caller must have checked
// that the release may take them (berth's ownership guard, in the dry run
// before the upgrade), as Helm's own check knows only Helm's annotations
// and would refuse an object a plain-YAML revision of the same
// Application applied.
func Upgrade(ctx context.Context, cfg *rest.Config, ch chart.Charter, values map[string]any, opts Options) (*Release, error) {
	if opts.MaxHistory <= 0 {
		opts.MaxHistory = DefaultMaxHistory
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	ac, err := configure(cfg, opts.Namespace)
	if err != nil {
		return nil, err
	}
	if _, err := unlock(ac, opts.ReleaseName); err != nil {
		return nil, err
	}
	if err := clearUninstalled(ac, opts.ReleaseName); err != nil {
		return nil, err
	}
	// What the chart no longer renders is left for the caller's prune.
	ac.KubeClient = keepRemoved{ac.KubeClient}
	hist := action.NewHistory(ac)
	hist.Max = 1
	_, herr := hist.Run(opts.ReleaseName)
	var r any
	if errors.Is(herr, driver.ErrReleaseNotFound) {
		in := action.NewInstall(ac)
		in.ReleaseName = opts.ReleaseName
		in.Namespace = opts.Namespace
		in.Description = opts.Description
		in.Timeout = opts.Timeout
		in.ServerSideApply = true
		in.ForceConflicts = true
		// Objects that exist are adopted: the caller's checks decided
		// which the Application may take (see Upgrade).
		in.TakeOwnership = true
		// The chart (Literal's copy, its subcharts folded in) was
		// rendered, its values checked against its schemas, by the caller.
		in.SkipSchemaValidation = true
		in.WaitStrategy = kube.HookOnlyStrategy
		in.WaitOptions = []kube.WaitOption{kube.WithWaitContext(ctx)}
		r, err = in.RunWithContext(ctx, ch, values)
	} else if herr != nil {
		return nil, fmt.Errorf("reading helm history of %s: %w", opts.ReleaseName, herr)
	} else {
		up := action.NewUpgrade(ac)
		up.Namespace = opts.Namespace
		up.Description = opts.Description
		up.MaxHistory = opts.MaxHistory
		up.Timeout = opts.Timeout
		up.ServerSideApply = "true"
		up.ForceConflicts = true
		up.TakeOwnership = true
		up.SkipSchemaValidation = true
		// Git holds every value: with none given, Helm would otherwise
		// reuse the previous release's (a values file deleted from Git
		// would keep its values installed).
		up.ResetValues = true
		up.WaitStrategy = kube.HookOnlyStrategy
		up.WaitOptions = []kube.WaitOption{kube.WithWaitContext(ctx)}
		r, err = up.RunWithContext(ctx, opts.ReleaseName, ch, values)
	}
	if err != nil {
		// A context that ended, or a hook that failed, can leave the
		// revision pending: it is this failure, not an interrupted agent.
		if _, serr := settle(ac, opts.ReleaseName, err); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("helm release %s: %w", opts.ReleaseName, err)
	}
	rel, ok := r.(*rspb.Release)
	if !ok {
		return nil, fmt.Errorf("helm returned an unexpected release type %T", r)
	}
	out := fromV1(rel)
	return &out, nil
}

// List returns the releases in namespace, as `helm list` shows them.
func List(cfg *rest.Config, namespace string) ([]Release, error) {
	ac, err := configure(cfg, namespace)
	if err != nil {
		return nil, err
	}
	l := action.NewList(ac)
	l.All = true
	rs, err := l.Run()
	if err != nil {
		return nil, fmt.Errorf("listing helm releases: %w", err)
	}
	var out []Release
	for _, r := range rs {
		rel, ok := r.(*rspb.Release)
		if !ok {
			continue
		}
		out = append(out, fromV1(rel))
	}
	return out, nil
}

// History returns every stored revision of release name, oldest first.
func History(cfg *rest.Config, namespace, name string) ([]Release, error) {
	ac, err := configure(cfg, namespace)
	if err != nil {
		return nil, err
	}
	rs, err := action.NewHistory(ac).Run(name)
	if err != nil {
		return nil, fmt.Errorf("reading helm history of %s: %w", name, err)
	}
	var out []Release
	for _, r := range rs {
		if rel, ok := r.(*rspb.Release); ok {
			out = append(out, fromV1(rel))
		}
	}
	return out, nil
}

// Rollback rolls release name back to revision version through the Helm
// SDK, so `helm history` records the rollback, and returns the revision it
// created. Like Upgrade, it deletes nothing the target does not hold: the
// caller prunes. When the latest revision already is a deployed rollback to
// version (a retry after a later step failed), it returns that one and
// runs nothing again: the chart's rollback hooks run once.
//
// maxHistory bounds the revisions Helm keeps (0: DefaultMaxHistory), as
// Upgrade's Options.MaxHistory does. A rollback whose hook fails leaves
// its revision failed, with Helm's error as its description, and the
// error wraps ErrHookFailed: running the hook again would fail again.
func Rollback(ctx context.Context, cfg *rest.Config, namespace, name string, version, maxHistory int) (int, error) {
	if latest, err := Latest(cfg, namespace, name); err == nil && latest != nil &&
		latest.Status == "deployed" && latest.Description == fmt.Sprintf("Rollback to %d", version) {
		return latest.Version, nil
	}
	ac, err := configure(cfg, namespace)
	if err != nil {
		return 0, err
	}
	if _, err := unlock(ac, name); err != nil {
		return 0, err
	}
	if kc, ok := ac.KubeClient.(*kube.Client); ok && failpoint.Enabled() {
		ac.KubeClient = failpointClient{kc}
	}
	// What the target release does not hold is left for the caller's prune.
	ac.KubeClient = keepRemoved{ac.KubeClient}
	rb := action.NewRollback(ac)
	rb.Version = version
	rb.ServerSideApply = "true"
	rb.ForceConflicts = true
	rb.WaitStrategy = kube.HookOnlyStrategy
	rb.WaitOptions = []kube.WaitOption{kube.WithWaitContext(ctx)}
	rb.Timeout = 5 * time.Minute
	rb.MaxHistory = maxHistory
	if rb.MaxHistory <= 0 {
		rb.MaxHistory = DefaultMaxHistory
	}
	if err := rb.Run(name); err != nil {
		// Helm returns from a failed hook without recording an outcome:
		// the revision it created stays pending-rollback, and would be
		// taken for one an agent left behind when it stopped.
		settled, serr := settle(ac, name, err)
		// Left pending: its hooks failed. One that ran (and failed, or
		// ran out of time) would again; one the API server could not
		// take is worth another try.
		if settled && !Unavailable(err) && !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w: %w", ErrHookFailed, err)
		}
		if serr != nil {
			err = errors.Join(err, serr)
		}
		return 0, fmt.Errorf("helm rollback of %s to revision %d: %w", name, version, err)
	}
	latest, err := Latest(cfg, namespace, name)
	if err != nil || latest == nil {
		return 0, fmt.Errorf("rolled %s back to revision %d, but reading the revision it created: %w", name, version, err)
	}
	return latest.Version, nil
}

// clearUninstalled forgets release name when its last revision is
// uninstalling or uninstalled: what a deleted Application's cleanup left
// when it gave up (a pre-delete hook kept failing) or could not delete
// the records. Helm would refuse to upgrade it; the install starts afresh,
// over whatever objects were kept.
func clearUninstalled(ac *action.Configuration, name string) error {
	last, err := ac.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the last revision of %s: %w", name, err)
	}
	rel, ok := last.(*rspb.Release)
	if !ok || rel.Info == nil || (rel.Info.Status != common.StatusUninstalling && rel.Info.Status != common.StatusUninstalled) {
		return nil
	}
	// A deleted Application's cleanup may still be at work on it (its
	// hooks, its records): not within uninstallWindow of its start.
	if since := time.Since(rel.Info.Deleted); since < uninstallWindow {
		return fmt.Errorf("helm release %s is being uninstalled (since %s ago, by a deleted Application's cleanup); installing it again after %s",
			name, since.Round(time.Second), uninstallWindow)
	}
	_, err = forget(ac, name)
	return err
}

// uninstallWindow is how long an uninstall may be at work: a deleted
// Application's cleanup is retried for 10 minutes, and each try runs the
// hooks for up to their timeout.
const uninstallWindow = 20 * time.Minute

// forget deletes every stored revision of release name (Helm's records,
// not the objects they list). It returns how many it deleted; none is no
// error.
func forget(ac *action.Configuration, name string) (int, error) {
	return forgetUpTo(ac, name, 0)
}

// forgetUpTo deletes the stored revisions of release name up to last (0:
// all of them).
func forgetUpTo(ac *action.Configuration, name string, last int) (int, error) {
	revs, err := ac.Releases.History(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading helm history of %s: %w", name, err)
	}
	n := 0
	for _, r := range revs {
		acc, err := release.NewAccessor(r)
		if err != nil {
			return n, fmt.Errorf("reading helm release %s: %w", name, err)
		}
		if last > 0 && acc.Version() > last {
			continue
		}
		if _, err := ac.Releases.Delete(name, acc.Version()); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
			return n, fmt.Errorf("deleting revision %d of helm release %s: %w", acc.Version(), name, err)
		}
		n++
	}
	return n, nil
}
