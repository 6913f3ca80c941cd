package application

import (
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"

	"github.com/berth-dev/berth/internal/render"
)

// capabilitiesTTL is how long the cluster's version and API versions are
// reused between Helm renders.
const capabilitiesTTL = time.Minute

// errCapabilities: the cluster's capabilities could not be read; the
// render is retried, never done with Helm's defaults instead.
var errCapabilities = errors.New("reading the cluster's capabilities for Helm")

// errLookup: a chart's `lookup` could not read the cluster for a reason
// that may pass (the API server unreachable or overloaded); the render is
// retried. A lookup the account may not make rejects the revision.
var errLookup = errors.New("reading the cluster for the chart's lookup")

// transientRead tells whether a failed read may succeed if tried again.
func transientRead(err error) bool {
	return !apierrors.IsForbidden(err) && !apierrors.IsUnauthorized(err) && !apierrors.IsBadRequest(err) &&
		!apierrors.IsInvalid(err) && !meta.IsNoMatchError(err) && !apierrors.IsMethodNotSupported(err)
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
