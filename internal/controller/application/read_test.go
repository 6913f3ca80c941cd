package application

import (
	"context"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// splitClient reads from one place (the informer cache) and writes to
// another (the API server), as the manager's client does.
type splitClient struct {
	client.Client
	cache client.Reader
}

func (s splitClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return s.cache.Get(ctx, key, obj, opts...)
}

// The reconciler reads an Application from the cache unless the cache has
// not seen the status this agent wrote last, or a write of unknown outcome
// failed; then it reads the API server. Fake clients stand in for the
// informer cache and the API server: cache lag cannot be produced on
// demand with the real ones (the integration tests in internal/agent run
// those).
func TestStatusWritesDecideWhereTheNextReadGoes(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	if err := berthv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: "ns", Name: "app"}
	app := &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"}}
	var failPatch error
	api := fake.NewClientBuilder().WithScheme(scheme).WithObjects(app.DeepCopy()).WithStatusSubresource(app).
		WithInterceptorFuncs(interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			if failPatch != nil {
				return failPatch
			}
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		}}).Build()
	stale := fake.NewClientBuilder().WithScheme(scheme).WithObjects(app.DeepCopy()).Build()
	r := &Reconciler{Client: splitClient{Client: api, cache: stale}, APIReader: api, metrics: newTestMetrics()}
	uncached := func() float64 { return testutil.ToFloat64(r.metrics.UncachedReads) }

	// Nothing written by this agent yet: the cache is used.
	got, err := r.read(ctx, key)
	if err != nil || got == nil || uncached() != 0 {
		t.Fatalf("first read: %v, %v, %v uncached", got, err, uncached())
	}

	// A status write the cache has not seen: the next read goes to the
	// API server and sees it.
	before := got.DeepCopy()
	got.Status.CurrentRelease = 7
	if err := r.writeStatus(ctx, before, got); err != nil {
		t.Fatal(err)
	}
	if got, err = r.read(ctx, key); err != nil || got.Status.CurrentRelease != 7 || uncached() != 1 {
		t.Fatalf("read after a write the cache lacks: release %d, %v, %v uncached", got.Status.CurrentRelease, err, uncached())
	}

	// Once the cache has the write, it is used again.
	r.Client = splitClient{Client: api, cache: api}
	if got, err = r.read(ctx, key); err != nil || got.Status.CurrentRelease != 7 || uncached() != 1 {
		t.Fatalf("read once the cache caught up: %v, %v uncached", err, uncached())
	}
	// Nothing changed: no request, and the cache is still trusted.
	if err := r.writeStatus(ctx, got.DeepCopy(), got); err != nil {
		t.Fatal(err)
	}
	if _, err = r.read(ctx, key); err != nil || uncached() != 1 {
		t.Fatalf("read after an empty write: %v, %v uncached", err, uncached())
	}

	// A write that failed may have landed: no cached copy is trusted.
	failPatch = apierrors.NewTimeoutError("slow", 1)
	before = got.DeepCopy()
	got.Status.CurrentRelease = 8
	if err := r.writeStatus(ctx, before, got); err == nil {
		t.Fatal("a failed status write returned no error")
	}
	failPatch = nil
	if _, err = r.read(ctx, key); err != nil || uncached() != 2 {
		t.Fatalf("read after a failed write: %v, %v uncached", err, uncached())
	}

	// A deleted Application: the write is no error, and nothing is kept.
	failPatch = apierrors.NewNotFound(berthv1.GroupVersion.WithResource("applications").GroupResource(), "app")
	before = got.DeepCopy()
	got.Status.CurrentRelease = 9
	if err := r.writeStatus(ctx, before, got); err != nil {
		t.Fatalf("status write of a deleted Application: %v", err)
	}
	if _, ok := r.written.Load(key); ok {
		t.Fatal("a deleted Application's last write is still remembered")
	}
	failPatch = nil
	if err := api.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	// What this process keeps about it goes too: one created again under
	// the name must not reuse an old backup or skip its validation.
	r.unrecorded.Store(key, unrecordedSync{sha: "abc"})
	r.validated.Store(key, "abc/sha256:0/r1/sa")
	r.pendingRollback.Store(key, struct{}{})
	if got, err = r.read(ctx, key); err != nil || got != nil {
		t.Fatalf("read of a deleted Application: %v, %v", got, err)
	}
	for name, m := range map[string]*sync.Map{"unrecorded": &r.unrecorded, "validated": &r.validated, "pendingRollback": &r.pendingRollback} {
		if _, ok := m.Load(key); ok {
			t.Errorf("%s still holds the deleted Application", name)
		}
	}
}

func newTestMetrics() *Metrics { return buildMetrics() }
