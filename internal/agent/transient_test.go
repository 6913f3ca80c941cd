package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// An API server that cannot judge a revision (here: a validating webhook
// it cannot call, which fails every write of a ConfigMap in the namespace
// with a 500) does not get the revision rejected: the Application says why
// and retries, is not Stalled, keeps the old state, and applies the
// revision once the API server can take it again.
func TestARevisionTheAPIServerCannotJudgeIsRetriedNotRejected(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v1 := f.settingsApp()

	down := webhookDown(t, f)
	v2 := f.wt.Write("app/cm.yaml", cm("settings", "v2")).CommitAndPush("v2")
	app := f.waitApp("demo", 60*time.Second, "v2 retried", func(a *berthv1.Application) bool {
		r := condition(a, berthv1.ConditionReconciling)
		return a.Status.LastFetchedRevision == v2 && r != nil && r.Status == metav1.ConditionTrue && r.Reason == "ClusterUnavailable"
	})
	if s := condition(app, berthv1.ConditionStalled); s != nil {
		t.Errorf("Stalled = %s %s: %s, want no Stalled condition for an API server that could not answer", s.Status, s.Reason, s.Message)
	}
	if msg := condition(app, berthv1.ConditionReconciling).Message; !strings.Contains(msg, "failed calling webhook") || !strings.Contains(msg, "retrying") {
		t.Errorf("Reconciling message = %q, want the webhook's failure and the retry", msg)
	}
	if app.Status.LastAppliedRevision != v1 || app.Status.Sync == "Failed" {
		t.Errorf("last applied %s, sync %q: want still %s, not Failed", app.Status.LastAppliedRevision, app.Status.Sync, v1)
	}
	var live corev1.ConfigMap
	must(t, f.c.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "settings"}, &live))
	if live.Data["greeting"] != "v1" {
		t.Fatalf("greeting = %q while the API server could not take v2, want v1's", live.Data["greeting"])
	}

	down()
	f.waitApp("demo", 30*time.Second, "v2 applied once the webhook is gone", appliedReady(v2))
	must(t, f.c.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "settings"}, &live))
	if live.Data["greeting"] != "v2" {
		t.Fatalf("greeting = %q, want v2's", live.Data["greeting"])
	}
}

// An Application that is Ready and whose Git and cluster do not change
// does not write its status at every poll: a pass that ends as it began
// is no transition (its Reconciling condition was set while it fetched).
func TestAnIdleApplicationDoesNotRewriteItsStatus(t *testing.T) {
	f := newFixture(t)
	v1 := f.settingsApp()
	app := f.waitApp("demo", 30*time.Second, "ready and settled", func(a *berthv1.Application) bool {
		r := condition(a, berthv1.ConditionReconciling)
		return appliedReady(v1)(a) && r != nil && r.Status == metav1.ConditionFalse
	})
	// Let the health recheck and the first polls after Ready pass.
	time.Sleep(5 * time.Second)
	must(t, f.c.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: "demo"}, app))
	rv := app.ResourceVersion
	// Four polls (the fixture's interval is 2 s).
	time.Sleep(8 * time.Second)
	must(t, f.c.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: "demo"}, app))
	if app.ResourceVersion != rv {
		r := condition(app, berthv1.ConditionReconciling)
		t.Errorf("the idle Application was written (resourceVersion %s → %s); Reconciling now %s since %s: %s",
			rv, app.ResourceVersion, r.Status, r.LastTransitionTime, r.Message)
	}
}

// webhookDown makes the API server call a webhook that is not there for
// every write of a ConfigMap in the fixture's namespace (failure policy
// Fail: each such write, dry runs too, fails with a 500), and returns a
// function that removes it. It returns once a dry-run create fails so.
func webhookDown(t *testing.T, f *fixture) (up func()) {
	t.Helper()
	ctx := context.Background()
	fail, none := admissionv1.Fail, admissionv1.SideEffectClassNone
	url, timeout := "https://127.0.0.1:1/validate", int32(2)
	cfg := &admissionv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "down-" + f.ns},
		Webhooks: []admissionv1.ValidatingWebhook{{
			Name:                    "down.berth.dev",
			ClientConfig:            admissionv1.WebhookClientConfig{URL: &url},
			Rules:                   []admissionv1.RuleWithOperations{{Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update}, Rule: admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": f.ns}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          &timeout,
		}},
	}
	must(t, f.c.Create(ctx, cfg))
	up = func() { _ = f.c.Delete(context.Background(), cfg) }
	t.Cleanup(up)
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: f.ns}}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := f.c.Create(ctx, probe.DeepCopy(), &client.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), "failed calling webhook") {
			return up
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook never took effect: %v", err)
		}
	}
}
