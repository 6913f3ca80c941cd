package application

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/discovery"

	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/render"
)

// capabilitiesTTL is how long the cluster's version and API versions are
// reused between Helm renders.
const capabilitiesTTL = time.Minute

// errCapabilities: the cluster's capabilities could not be read; the
// render is retried, never done with Helm's defaults instead.
var errCapabilities = errors.New("reading the cluster's capabilities for Helm")

// errClusterRead: a read of the cluster that a chart's render needs (a
// `lookup`, the Helm release) failed for a reason that may pass: the
// render is retried with backoff. Any other failure (forbidden, a kind
// not served) rejects the revision.
var errClusterRead = errors.New("reading the cluster for the chart")

// clusterReadErr marks err with errClusterRead when it may pass if tried
// again: the API server unreachable, overloaded, or timing out.
func clusterReadErr(err error) error {
	if apply.Transient(err) || discovery.IsGroupDiscoveryFailedError(err) {
		return fmt.Errorf("%w: %w", errClusterRead, err)
	}
	return err
}

// capabilities caches what Helm's install sees of the cluster
// (.Capabilities), so the agent's render — checked by the policy gate,
// dry-run, and applied over Helm's — is the one Helm installs.
type capabilities struct {
	mu          sync.Mutex
	at          time.Time
	kubeVersion string
	apiVersions []string
}

func (r *Reconciler) helmCapabilities() (string, []string, error) {
	c := &r.caps
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < capabilitiesTTL {
		return c.kubeVersion, c.apiVersions, nil
	}
	dc, err := discovery.NewDiscoveryClientForConfig(r.Config)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", errCapabilities, err)
	}
	kv, av, err := render.ClusterCapabilities(dc)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", errCapabilities, err)
	}
	c.at, c.kubeVersion, c.apiVersions = time.Now(), kv, av
	return kv, av, nil
}
