package rehearsal

import (
	"io"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Labels and annotations of scratch namespaces and the objects in them.
const (
	// DrillLabel on a scratch namespace and every object the drill applies
	// names the scratch namespace; pruning only deletes objects carrying it.
	DrillLabel = "rehearsal.berth.dev/drill"
	// AppLabel and AppNamespaceLabel on a scratch namespace name the
	// Application it rehearses.
	AppLabel          = "rehearsal.berth.dev/application"
	AppNamespaceLabel = "rehearsal.berth.dev/application-namespace"
	// ExpiresAnnotation on a scratch namespace is the RFC 3339 time after
	// which it may be deleted: the next drill of the same Application
	// deletes expired ones left behind by --keep or a killed drill.
	ExpiresAnnotation = "rehearsal.berth.dev/expires"
	// ReleasesAnnotation records "FROM->TO" on a scratch namespace.
	ReleasesAnnotation = "rehearsal.berth.dev/releases"
)

// DefaultTimeout bounds each step's wait for health.
const DefaultTimeout = 5 * time.Minute

// keepFor is how long a scratch namespace may outlive its drill before
// another drill of the same Application deletes it.
const keepFor = 24 * time.Hour

// Options say what to rehearse.
type Options struct {
	// App is the Application.
	App types.NamespacedName
	// From is the release to start from and roll back to; 0 means the
	// newest Healthy or Superseded release before To.
	From int64
	// To is the release to upgrade to; 0 means the Application's current
	// release.
	To int64
	// Timeout bounds each step's wait for health (DefaultTimeout when 0).
	Timeout time.Duration
	// Keep leaves the scratch namespace in place for inspection.
	Keep bool
	// Out receives one progress line per step and the verdict; nil
	// discards them.
	Out io.Writer
}
