package application

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// The reconciler reads an Application from the cache unless the cache has
// not seen the status this agent wrote last; then it reads the API server.
// The two fake clients stand in for the informer cache and the API server
// (the integration tests in internal/agent run the real ones, where cache
// lag cannot be produced on demand).
func TestReadFallsBackToTheAPIServerWhenTheCacheIsBehind(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	if err := berthv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: "ns", Name: "app"}
	stale := &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"}}
	fresh := stale.DeepCopy()
	fresh.Status.CurrentRelease = 7
	cache := fake.NewClientBuilder().WithScheme(scheme).WithObjects(stale).WithStatusSubresource(stale).Build()
	api := fake.NewClientBuilder().WithScheme(scheme).WithObjects(fresh).WithStatusSubresource(fresh).Build()
	// The fake clients set their own resourceVersions on create: read them
	// back, so that "the cache is behind" is the only difference.
	var c, a berthv1.Application
	if err := cache.Get(ctx, key, &c); err != nil {
		t.Fatal(err)
	}
	if err := api.Get(ctx, key, &a); err != nil {
		t.Fatal(err)
	}
	if c.ResourceVersion == a.ResourceVersion {
		// Give the API server's copy a newer version.
		a.Labels = map[string]string{"touched": "yes"}
		if err := api.Update(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}
	r := &Reconciler{Client: cache, APIReader: api, metrics: newTestMetrics()}

	// Nothing written by this agent yet: the cache is used.
	got, err := r.read(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != c.ResourceVersion || testutil.ToFloat64(r.metrics.UncachedReads) != 0 {
		t.Fatalf("read %s (uncached %v), want the cache's %s", got.ResourceVersion, testutil.ToFloat64(r.metrics.UncachedReads), c.ResourceVersion)
	}

	// The agent wrote a status the cache has not seen: the API server is read.
	if err := api.Get(ctx, key, &a); err != nil {
		t.Fatal(err)
	}
	r.written.Store(key, a.ResourceVersion)
	got, err = r.read(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != a.ResourceVersion || got.Status.CurrentRelease == 0 || testutil.ToFloat64(r.metrics.UncachedReads) != 1 {
		t.Fatalf("read %s with release %d (uncached %v), want the API server's %s", got.ResourceVersion, got.Status.CurrentRelease, testutil.ToFloat64(r.metrics.UncachedReads), a.ResourceVersion)
	}

	// Once the cache has caught up, it is used again.
	r.written.Store(key, c.ResourceVersion)
	if got, err = r.read(ctx, key); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != c.ResourceVersion || testutil.ToFloat64(r.metrics.UncachedReads) != 1 {
		t.Fatalf("read %s (uncached %v) after the cache caught up", got.ResourceVersion, testutil.ToFloat64(r.metrics.UncachedReads))
	}

	// A deleted Application is no error and no object.
	if err := cache.Delete(ctx, &c); err != nil {
		t.Fatal(err)
	}
	if got, err = r.read(ctx, key); err != nil || got != nil {
		t.Fatalf("read of a deleted Application: %v, %v", got, err)
	}
	if _, ok := r.written.Load(key); ok {
		t.Fatal("a deleted Application's last write is still remembered")
	}
}

func newTestMetrics() *Metrics {
	return &Metrics{UncachedReads: prometheus.NewCounter(prometheus.CounterOpts{Name: "test_uncached_reads_total"})}
}
