package application

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/policy"
)

// An Application that is gone leaves no series behind (a gauge left at
// its last value would keep an alert firing), and a policy rule no
// longer violated leaves no gauge either.
func TestMetricsOfAnApplicationGoWithIt(t *testing.T) {
	m := buildMetrics()
	r := &Reconciler{metrics: m, Recorder: record.NewFakeRecorder(10)}
	for _, name := range []string{"a", "b"} {
		m.ReconcileDuration.WithLabelValues("ns", name).Observe(1)
		m.AppliedObjects.WithLabelValues("ns", name, "Created").Inc()
		m.Failures.WithLabelValues("ns", name, "FetchFailed").Inc()
		m.Drift.WithLabelValues("ns", name).Set(2)
		m.Healed.WithLabelValues("ns", name).Inc()
		m.Rollbacks.WithLabelValues("ns", name).Inc()
		r.recordPolicy(&berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}},
			&policy.Report{Violations: []policy.Violation{{RuleID: "image-digest", Mode: policy.ModeWarn, Object: "apps/Deployment ns/web"}}})
	}
	r.forget(types.NamespacedName{Namespace: "ns", Name: "a"})
	for what, n := range map[string]int{
		"reconcile durations": testutil.CollectAndCount(m.ReconcileDuration),
		"applied objects":     testutil.CollectAndCount(m.AppliedObjects),
		"failures":            testutil.CollectAndCount(m.Failures),
		"drifted objects":     testutil.CollectAndCount(m.Drift),
		"heals":               testutil.CollectAndCount(m.Healed),
		"rollbacks":           testutil.CollectAndCount(m.Rollbacks),
		"policy violations":   testutil.CollectAndCount(m.PolicyViolations),
	} {
		if n != 1 {
			t.Errorf("%s: %d series after one of two Applications went, want b's only", what, n)
		}
	}
	if v := testutil.ToFloat64(m.Drift.WithLabelValues("ns", "b")); v != 2 {
		t.Errorf("b's drift gauge = %v, want it kept at 2", v)
	}

	// b's revision now passes the rule: its series goes.
	r.recordPolicy(&berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b"}}, &policy.Report{})
	if n := testutil.CollectAndCount(m.PolicyViolations); n != 0 {
		t.Errorf("%d policy violation series after the last violation was fixed, want 0", n)
	}
}

// A deleted Application whose cleanup cannot tell whether berth is being
// uninstalled, because the API server did not answer, is retried: only a
// refusal (berth's rights gone, as in an uninstall) keeps everything.
func TestCleanupRetriesWhenTheCRDCannotBeRead(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := berthv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var readErr error
	reader := fake.NewClientBuilder().WithScheme(scheme).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return readErr
		}}).Build()
	r := &Reconciler{APIReader: reader, DefaultServiceAccount: "deployer"}
	app := &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}}
	crd := schema.GroupResource{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}

	readErr = apierrors.NewServiceUnavailable("etcd leader changed")
	if why, _, err := r.keepAll(context.Background(), app); err == nil || why != "" {
		t.Errorf("503 reading the CRD: keep %q, error %v; want no decision and an error to retry", why, err)
	}
	readErr = apierrors.NewForbidden(crd, applicationCRD, nil)
	if why, warn, err := r.keepAll(context.Background(), app); err != nil || why == "" || !warn {
		t.Errorf("403 reading the CRD: keep %q (warn %v), error %v; want everything kept, with a warning", why, warn, err)
	}
	readErr = nil
	if why, _, err := r.keepAll(context.Background(), app); err != nil || why != "" {
		t.Errorf("CRD read, not deleting: keep %q, error %v; want a cleanup", why, err)
	}
}

// A revision the API server cannot judge is retried, backing off from 10 s
// to the poll interval; after five tries in a row the Application is
// Stalled too (and still retried); a success starts the count again.
func TestTransientFailuresBackOffThenStall(t *testing.T) {
	r := &Reconciler{metrics: buildMetrics(), Recorder: record.NewFakeRecorder(100), DefaultInterval: 2 * time.Minute}
	app := &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}}
	cause := apierrors.NewInternalError(errors.New(`failed calling webhook "down.example.test"`))
	var waits []time.Duration
	for i := range 7 {
		waits = append(waits, r.retrySoon(app, "abc", cause).RequeueAfter)
		stalled := meta.IsStatusConditionTrue(app.Status.Conditions, berthv1.ConditionStalled)
		if want := i+1 >= stallAfterRetries; stalled != want {
			t.Fatalf("try %d: Stalled %v, want %v", i+1, stalled, want)
		}
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 2 * time.Minute, 2 * time.Minute, 2 * time.Minute}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("waits = %v, want %v", waits, want)
	}
	r.transientTries.Delete(types.NamespacedName{Namespace: "ns", Name: "a"}) // what a success does
	if w := r.retrySoon(app, "abc", cause).RequeueAfter; w != 10*time.Second {
		t.Errorf("after a success the wait is %v, want 10s again", w)
	}
}
