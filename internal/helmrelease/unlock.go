package helmrelease

import (
	"errors"
	"fmt"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	"helm.sh/helm/v4/pkg/release/common"
	rspb "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/client-go/rest"

	"github.com/berth-dev/berth/internal/failpoint"
)

// unlock releases the lock a crashed operation left on release name: Helm
// marks a revision pending-install, pending-upgrade or pending-rollback
// while it works and refuses any other operation until it is done, so a
// process killed in between leaves the release locked for ever (helm#4558).
// berth is the only writer of its releases (one elected agent, one
// reconcile per Application at a time), so a pending revision seen before
// an operation starts can only be such a leftover: it is marked failed,
// with a description saying so, and the operation proceeds. It returns the
// revision it unlocked, or 0.
func unlock(ac *action.Configuration, name string) (int, error) {
	return failPending(ac, name, func(was common.Status) string {
		return fmt.Sprintf("berth: %s interrupted (the agent stopped mid-operation); marked failed to release the lock", was)
	})
}

// failPending marks the latest revision of release name failed, with the
// description why gives for its pending status, when it is pending, and
// returns its version (0: nothing was pending).
func failPending(ac *action.Configuration, name string, why func(was common.Status) string) (int, error) {
	last, err := ac.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the last revision of %s: %w", name, err)
	}
	rel, ok := last.(*rspb.Release)
	if !ok || rel.Info == nil || !rel.Info.Status.IsPending() {
		return 0, nil
	}
	was := rel.Info.Status
	rel.Info.Status = common.StatusFailed
	rel.Info.Description = why(was)
	if err := ac.Releases.Update(rel); err != nil {
		return 0, fmt.Errorf("marking %s revision %d (%s) failed: %w", name, rel.Version, was, err)
	}
	return rel.Version, nil
}

// Unlock releases a lock left on release name by an interrupted operation
// (see unlock) and returns the revision it unlocked, or 0 when there was
// none.
func Unlock(cfg *rest.Config, namespace, name string) (int, error) {
	ac, err := configure(cfg, namespace)
	if err != nil {
		return 0, err
	}
	return unlock(ac, name)
}

// failpointClient arms the HelmRollbackUpdate failpoint around a
// rollback's cluster update; Rollback wraps its client only when a
// failpoint is armed.
type failpointClient struct{ *kube.Client }

func (c failpointClient) Update(original, target kube.ResourceList, options ...kube.ClientUpdateOption) (*kube.Result, error) {
	failpoint.Inject(failpoint.HelmRollbackUpdate)
	return c.Client.Update(original, target, options...)
}
