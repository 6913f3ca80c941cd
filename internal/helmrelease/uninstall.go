package helmrelease

import (
	"errors"
	"fmt"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	rspb "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// Uninstall uninstalls release name as `helm uninstall` does, running its
// pre-delete and post-delete hooks and deleting its records, with one
// difference: Helm does not delete the release's objects itself. remove
// does, between the two hooks: the caller's own pruning, with its
// protections (Helm's uninstall would delete a chart's
// PersistentVolumeClaims). remove is called once, also when Helm finds
// none of the objects left to delete; not when a pre-delete hook fails,
// for then nothing is deleted and the error is returned. timeout bounds
// each hook. It returns how many revisions it deleted.
func Uninstall(cfg *rest.Config, namespace, name string, timeout time.Duration, remove func() error) (int, error) {
	ac, err := configure(cfg, namespace)
	if err != nil {
		return 0, err
	}
	revs, err := ac.Releases.History(name)
	if errors.Is(err, driver.ErrReleaseNotFound) || (err == nil && len(revs) == 0) {
		return 0, remove()
	}
	if err != nil {
		return 0, fmt.Errorf("reading helm history of %s: %w", name, err)
	}
	objects := &pruneObjects{Interface: ac.KubeClient, remove: remove}
	ac.KubeClient = objects
	u := action.NewUninstall(ac)
	u.Timeout = timeout
	u.WaitStrategy = kube.HookOnlyStrategy
	u.KeepHistory = false
	// Helm's uninstall takes no context: timeout bounds its hooks.
	_, err = u.Run(name)
	if objects.err != nil {
		return 0, objects.err
	}
	if err != nil {
		return 0, fmt.Errorf("helm uninstall %s: %w", name, err)
	}
	if !objects.called {
		if err := remove(); err != nil {
			return len(revs), err
		}
	}
	return len(revs), nil
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

// pruneObjects is Helm's client with one change: asked to delete the
// release's objects (not hooks, which Helm deletes by their delete
// policies), it calls remove instead.
type pruneObjects struct {
	kube.Interface
	remove func() error
	called bool
	err    error
}

func (p *pruneObjects) Delete(resources kube.ResourceList, policy metav1.DeletionPropagation) (*kube.Result, []error) {
	if hooks(resources) {
		return p.Interface.Delete(resources, policy)
	}
	p.called = true
	if err := p.remove(); err != nil {
		p.err = err
		return nil, []error{err}
	}
	return &kube.Result{}, nil
}

// hooks reports whether every resource is a Helm hook.
func hooks(resources kube.ResourceList) bool {
	for _, info := range resources {
		m, err := meta.Accessor(info.Object)
		if err != nil {
			return false
		}
		if _, ok := m.GetAnnotations()[rspb.HookAnnotation]; !ok {
			return false
		}
	}
	return len(resources) > 0
}
