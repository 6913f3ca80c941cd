package rehearsal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/controller/application"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/release"
)

// cleanupTimeout bounds the wait for the scratch namespace to be gone.
const cleanupTimeout = 2 * time.Minute

// Run rehearses a rollback of opts.App: in a fresh scratch namespace it
// deploys release From, upgrades to To, rolls back to From, each step
// waited on until healthy, and deletes the namespace (unless Keep). c and
// cfg are the caller's; c reads the Application and its releases and
// manages the scratch namespace.
//
// A drill that fails (a release that does not apply, an object that does
// not become healthy, a release whose manifests fail their digest) is
// reported in Result.Failure with a nil error. The error is for drills
// that could not run: no such Application, no release to roll back to,
// the cluster unreachable.
func Run(ctx context.Context, c client.Client, cfg *rest.Config, opts Options) (*Result, error) {
	start := time.Now()
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	app, err := getApp(ctx, c, opts.App)
	if err != nil {
		return nil, err
	}
	store := &release.Store{Client: c}
	fromRel, toRel, err := pickReleases(ctx, store, app, opts.From, opts.To)
	if err != nil {
		return nil, err
	}
	res := &Result{From: fromRel.Spec.Number, To: toRel.Spec.Number}
	defer func() { res.Duration = time.Since(start) }()
	p := &pair{from: fromRel, to: toRel}
	if err := readManifests(ctx, store, p); err != nil {
		var f *Failure
		if errors.As(err, &f) {
			res.Failure = f
			fmt.Fprintln(out, f.Error())
			return res, nil
		}
		return res, err
	}

	sweep(ctx, c, app, start, out)
	scratch, err := createScratch(ctx, c, app, res.From, res.To, start)
	if err != nil {
		return res, err
	}
	res.Namespace = scratch
	id := chooseIdentity(ctx, c, cfg, app, scratch)
	res.Identity, res.Impersonated = id.user, id.impersonated
	fmt.Fprintf(out, "rehearsing %s: release %d -> %d -> %d in scratch namespace %s\n", app.Name, res.From, res.To, res.From, scratch)
	if id.impersonated {
		fmt.Fprintf(out, "writing as %s, like the agent\n", id.user)
	} else {
		fmt.Fprintf(out, "writing as %s: %s; permissions are not rehearsed\n", id.user, id.note)
	}

	runErr := drillSteps(ctx, id.cfg, app.Spec.Namespace, scratch, timeout, p, res, out)
	if opts.Keep {
		fmt.Fprintf(out, "4/4 %-32s %-6s %6s  kept %s (a later drill deletes it after %.0fh); delete it with: kubectl delete namespace %s\n",
			"clean up", "ok", round(0), scratch, keepFor.Hours(), scratch)
		res.Steps = append(res.Steps, Step{Number: StepCleanup, Name: "clean up"})
	} else {
		cleanup(ctx, c, scratch, res, out)
	}
	if runErr != nil {
		fmt.Fprintf(out, "rehearsal interrupted: %v\n", runErr)
		return res, runErr
	}
	if res.Failure != nil {
		fmt.Fprintln(out, res.Failure.Error())
	} else {
		fmt.Fprintf(out, "rehearsal passed: release %d -> %d -> %d in %s\n", res.From, res.To, res.From, round(time.Since(start)))
	}
	return res, nil
}

// drillSteps runs steps 1 to 3. The way back (step 3) is rehearsed even
// when the upgrade failed: that is when the agent takes it.
func drillSteps(ctx context.Context, cfg *rest.Config, target, scratch string, timeout time.Duration, p *pair, res *Result, out io.Writer) error {
	mgr, namespaced, err := newManager(cfg, append(append([]manifest.Object{}, p.fromObjs...), p.toObjs...))
	if err != nil {
		return err
	}
	from := isolate(p.fromObjs, target, scratch, namespaced)
	to := isolate(p.toObjs, target, scratch, namespaced)
	res.DryRunOnly = union(ids(from.checkOnly), ids(to.checkOnly))
	if len(res.DryRunOnly) > 0 {
		fmt.Fprintf(out, "checked by dry-run only (cluster-scoped or in another namespace, cannot be isolated): %s\n", strings.Join(res.DryRunOnly, ", "))
	}
	d := &drill{mgr: mgr, scratch: scratch, timeout: timeout, out: out, res: res}
	ok, err := d.step(ctx, StepDeploy, fmt.Sprintf("deploy release %d", res.From), nil, from)
	if err != nil || !ok {
		return err
	}
	if _, err := d.step(ctx, StepUpgrade, fmt.Sprintf("upgrade to release %d", res.To), &from, to); err != nil {
		return err
	}
	_, err = d.step(ctx, StepRollback, fmt.Sprintf("roll back to release %d", res.From), &to, from)
	return err
}

// cleanup deletes the scratch namespace, even when ctx was cancelled.
func cleanup(ctx context.Context, c client.Client, scratch string, res *Result, out io.Writer) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout+10*time.Second)
	defer cancel()
	start := time.Now()
	goneNow, err := deleteScratch(ctx, c, scratch, cleanupTimeout)
	s := Step{Number: StepCleanup, Name: "clean up", Duration: time.Since(start), Err: err}
	res.Steps = append(res.Steps, s)
	switch {
	case err != nil:
		fmt.Fprintf(out, "4/4 %-32s %-6s %6s  %v\n", s.Name, "FAILED", round(s.Duration), err)
		res.fail(StepCleanup, s.Name, err)
	case goneNow:
		fmt.Fprintf(out, "4/4 %-32s %-6s %6s  deleted namespace %s\n", s.Name, "ok", round(s.Duration), scratch)
	default:
		fmt.Fprintf(out, "4/4 %-32s %-6s %6s  namespace %s is still terminating; the cluster finishes deleting it\n", s.Name, "ok", round(s.Duration), scratch)
	}
}

// newManager returns an apply.Manager writing with cfg and a function
// telling namespaced kinds apart (as the agent does, see
// application.NamespacedFunc).
func newManager(cfg *rest.Config, objs []manifest.Object) (*apply.Manager, func(schema.GroupVersionKind) bool, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("creating discovery client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("creating client: %w", err)
	}
	return apply.NewManager(dyn, mapper), application.NamespacedFunc(mapper, objs), nil
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
