package helmrelease

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	"helm.sh/helm/v4/pkg/release/common"
	rspb "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/client-go/rest"
)

// Uninstalled is what Uninstall did.
type Uninstalled struct {
	// Hooks counts the delete hooks Helm ran (0 on a retry whose hooks
	// had run).
	Hooks int
	// Revisions counts the records deleted.
	Revisions int
	// PostDelete is a post-delete hook's failure: the objects were
	// deleted, and the hook is not run again.
	PostDelete error
}

// ErrPreDelete wraps the failure of a pre-delete hook (or of what Helm
// does before it deletes anything): nothing was deleted.
var ErrPreDelete = errors.New("before deleting anything")

// Uninstall uninstalls release name as `helm uninstall` does, running its
// pre-delete and post-delete hooks and deleting its records, with one
// difference: Helm does not delete the release's objects itself. remove
// does, between the two hooks: the caller's own pruning, with its
// protections (Helm's uninstall would delete a chart's
// PersistentVolumeClaims). remove is called once, whatever Helm finds
// left to delete, unless a pre-delete hook fails (the error then wraps
// ErrPreDelete). A release whose hooks ran in an earlier call (stored as
// uninstalled) is not run again: remove is called and the records go.
// timeout bounds each hook's wait, which also ends with ctx (a hook cut
// short fails like one that timed out).
func Uninstall(ctx context.Context, cfg *rest.Config, namespace, name string, timeout time.Duration, remove func() error) (Uninstalled, error) {
	ac, err := configure(cfg, namespace)
	if err != nil {
		return Uninstalled{}, err
	}
	return uninstall(ctx, ac, name, timeout, remove)
}

func uninstall(ctx context.Context, ac *action.Configuration, name string, timeout time.Duration, remove func() error) (Uninstalled, error) {
	var out Uninstalled
	last, err := ac.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return out, remove()
	}
	if err != nil {
		return out, fmt.Errorf("reading the last revision of %s: %w", name, err)
	}
	rel, ok := last.(*rspb.Release)
	if !ok {
		return out, fmt.Errorf("helm returned an unexpected release type %T", last)
	}
	if rel.Info == nil || rel.Info.Status != common.StatusUninstalled {
		if rel.Info != nil && rel.Info.Status == common.StatusUninstalling && preDeleteDone(rel) {
			// An earlier call ran the pre-delete hooks, then failed
			// (its remove did): they are not run again.
			for _, h := range rel.Hooks {
				h.Events = slices.DeleteFunc(h.Events, func(e rspb.HookEvent) bool { return e == rspb.HookPreDelete })
			}
			if err := ac.Releases.Update(rel); err != nil {
				return out, fmt.Errorf("recording that the pre-delete hooks of %s ran: %w", name, err)
			}
		}
		objects := &pruneObjects{Interface: ac.KubeClient, remove: remove, hooks: map[string]bool{}}
		for _, h := range rel.Hooks {
			objects.hooks[h.Manifest] = true
		}
		ac.KubeClient = objects
		defer func() { ac.KubeClient = objects.Interface }()
		u := action.NewUninstall(ac)
		u.Timeout = timeout
		u.WaitStrategy = kube.HookOnlyStrategy
		u.WaitOptions = []kube.WaitOption{kube.WithWaitContext(ctx)}
		// Helm stores the release as uninstalled; the records go below,
		// so that a retry after a failure there does not run the hooks
		// again.
		u.KeepHistory = true
		// Helm's uninstall takes no context of its own: the wait option
		// above ends its hooks' waits with ctx, and nothing else in it
		// waits.
		_, err := u.Run(name)
		switch {
		case objects.err != nil:
			return out, objects.err
		case err != nil && !objects.called:
			return out, fmt.Errorf("helm uninstall %s: %w: %w", name, ErrPreDelete, err)
		case err != nil:
			out.PostDelete = err
		}
		out.Hooks = deleteHooks(rel)
	} else if err := remove(); err != nil {
		return out, err
	}
	// Only the revisions this call uninstalled: a newer one is another
	// install's (an Application that took the name meanwhile).
	out.Revisions, err = forgetUpTo(ac, name, rel.Version)
	return out, err
}

// preDeleteDone reports whether every pre-delete hook of rel succeeded in
// the uninstall that marked it uninstalling.
func preDeleteDone(rel *rspb.Release) bool {
	for _, h := range rel.Hooks {
		if slices.Contains(h.Events, rspb.HookPreDelete) &&
			(h.LastRun.Phase != rspb.HookPhaseSucceeded || h.LastRun.StartedAt.Before(rel.Info.Deleted)) {
			return false
		}
	}
	return true
}

// deleteHooks counts the pre-delete and post-delete hooks of rel.
func deleteHooks(rel *rspb.Release) int {
	n := 0
	for _, h := range rel.Hooks {
		for _, e := range h.Events {
			if e == rspb.HookPreDelete || e == rspb.HookPostDelete {
				n++
				break
			}
		}
	}
	return n
}

// pruneObjects is Helm's client with one change: asked to build the
// release's objects for deletion (which its uninstall does right after
// the pre-delete hooks, whatever is left to delete), it calls remove
// instead and returns none, so Helm deletes nothing itself. Hooks are
// built as usual: Helm builds each from its stored manifest, byte for
// byte.
type pruneObjects struct {
	kube.Interface
	remove func() error
	hooks  map[string]bool
	called bool
	err    error
}

// GetWaiterWithOptions hands Helm's wait options (the context) to the
// wrapped client: embedded as kube.Interface, its own method is not
// promoted, and Helm would wait without them.
func (p *pruneObjects) GetWaiterWithOptions(ws kube.WaitStrategy, opts ...kube.WaitOption) (kube.Waiter, error) {
	return waiterWithOptions(p.Interface, ws, opts...)
}

func (p *pruneObjects) Build(r io.Reader, validate bool) (kube.ResourceList, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if p.hooks[string(data)] || p.called {
		return p.Interface.Build(bytes.NewReader(data), validate)
	}
	p.called = true
	if err := p.remove(); err != nil {
		p.err = err
		return nil, err
	}
	return kube.ResourceList{}, nil
}
