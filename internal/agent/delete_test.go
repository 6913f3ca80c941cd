package agent_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/helmrelease"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Deleting an Application prunes what it applied, with a sync's
// protections: the PersistentVolumeClaim and an object annotated
// berth.dev/prune: "false" stay; its Helm release's records go with a
// chart's objects; its Releases are garbage-collected. Suspended, or with
// prune off, it keeps everything; an account that may no longer delete
// (its RoleBinding gone first) does not hold the Application forever.
func TestDeletingAnApplicationPrunesWhatItApplied(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pvName := f.persistentVolume()
	keep := strings.Replace(cm("kept", "x"), "metadata:\n", "metadata:\n  annotations: {berth.dev/prune: \"false\"}\n", 1)
	// A second account, whose rights are taken away before its
	// Application is deleted.
	must(t, f.c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "leaving", Namespace: f.ns}}))
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "leaving-admin", Namespace: f.ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "leaving", Namespace: f.ns}},
	}
	must(t, f.c.Create(ctx, binding))
	// demo may create a Namespace (opted in to pruning), into which
	// another Application deploys.
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-deployer-cluster"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: f.ns}},
	}
	must(t, f.c.Create(ctx, crb))
	t.Cleanup(func() { _ = f.c.Delete(context.Background(), crb) })
	shared := f.ns + "-shared"
	t.Cleanup(func() {
		_ = f.c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: shared}})
	})
	sha := f.wt.Write("app/cm.yaml", cm("settings", "v1")).
		Write("app/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: "+shared+"\n  annotations: {berth.dev/prune: \"true\"}\n").
		Write("app/deploy.yaml", deploy("1")).
		Write("app/pvc.yaml", strings.Replace(pvc, "%s", pvName, 1)).
		Write("app/keep.yaml", keep).
		Write("suspended/cm.yaml", cm("suspended", "x")).
		Write("noprune/cm.yaml", cm("noprune", "x")).
		Write("leaving/cm.yaml", cm("leaving", "x")).
		Write("chart/Chart.yaml", chartYAML).
		Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).CommitAndPush("five apps")
	off := false
	f.createApp("demo", "app")
	f.createApp("suspended", "suspended")
	f.createApp("noprune", "noprune", func(a *berthv1.Application) { a.Spec.SyncPolicy.Prune = &off })
	f.createApp("leaving", "leaving", func(a *berthv1.Application) { a.Spec.ServiceAccountName = "leaving" })
	f.createApp("hello", "chart")
	f.createApp("tenant", "tenant", func(a *berthv1.Application) { a.Spec.Namespace = shared; a.Spec.Suspend = true })
	for _, name := range []string{"demo", "suspended", "noprune", "leaving", "hello"} {
		app := f.waitApp(name, 60*time.Second, "applied", appliedReady(sha))
		if !slices.Contains(app.Finalizers, berthv1.CleanupFinalizer) {
			t.Fatalf("%s: finalizers = %v, want %s", name, app.Finalizers, berthv1.CleanupFinalizer)
		}
	}
	if len(f.releases("demo")) != 1 {
		t.Fatalf("releases of demo = %s", releaseSummary(f.releases("demo")))
	}

	del := func(name string) {
		t.Helper()
		must(t, f.c.Delete(ctx, &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}}))
		f.waitGone(&berthv1.Application{}, name, 60*time.Second)
	}

	del("demo")
	if f.get(&corev1.ConfigMap{}, "settings") {
		t.Error("ConfigMap settings is still there after its Application was deleted")
	}
	if d := (&appsv1.Deployment{}); f.get(d, "web") && d.DeletionTimestamp.IsZero() {
		t.Error("Deployment web is still there after its Application was deleted")
	}
	if !f.get(&corev1.PersistentVolumeClaim{}, "data") {
		t.Error("the PersistentVolumeClaim was deleted with its Application; it must be kept")
	}
	if !f.get(&corev1.ConfigMap{}, "kept") {
		t.Error(`an object annotated berth.dev/prune: "false" was deleted with its Application`)
	}
	if msg := f.waitEvent("demo", "CleanedUp"); !strings.Contains(msg, "PersistentVolumeClaim") || !strings.Contains(msg, "kept") ||
		!strings.Contains(msg, "Application "+f.ns+"/tenant deploys into it") {
		t.Errorf("CleanedUp event = %q, want the kept claim and the kept Namespace named", msg)
	}
	if ns := (&corev1.Namespace{}); f.c.Get(ctx, types.NamespacedName{Name: shared}, ns) != nil || !ns.DeletionTimestamp.IsZero() {
		t.Errorf("Namespace %s, into which another Application deploys, was deleted with demo", shared)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(f.releases("demo")) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("releases of the deleted Application = %s, want none (garbage-collected)", releaseSummary(f.releases("demo")))
		}
		time.Sleep(300 * time.Millisecond)
	}

	del("hello")
	if f.get(&corev1.ConfigMap{}, "hello-config") {
		t.Error("the chart's ConfigMap is still there after its Application was deleted")
	}
	rels, err := helmrelease.List(f.env.Config, f.ns)
	must(t, err)
	if len(rels) != 0 {
		t.Errorf("helm releases after the Application was deleted = %+v, want none", rels)
	}

	// Suspended, then deleted: everything stays.
	app := &berthv1.Application{}
	must(t, f.c.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "suspended"}, app))
	app.Spec.Suspend = true
	must(t, f.c.Update(ctx, app))
	del("suspended")
	if !f.get(&corev1.ConfigMap{}, "suspended") {
		t.Error("the objects of an Application deleted while suspended were deleted")
	}

	del("noprune")
	if !f.get(&corev1.ConfigMap{}, "noprune") {
		t.Error("the objects of an Application with prune off were deleted with it")
	}

	must(t, f.c.Delete(ctx, binding))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		sar, err := f.env.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:" + f.ns + ":leaving",
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: f.ns, Verb: "delete", Resource: "configmaps"},
		}}, metav1.CreateOptions{})
		must(t, err)
		if !sar.Status.Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the account may still delete ConfigMaps 30s after its RoleBinding was deleted")
		}
	}
	del("leaving")
	if !f.get(&corev1.ConfigMap{}, "leaving") {
		t.Error("ConfigMap leaving is gone, yet its account had no right to delete it")
	}
	if msg := f.waitEvent("leaving", "CleanupSkipped"); !strings.Contains(msg, "may not delete") || !strings.Contains(msg, "ConfigMap") {
		t.Errorf("CleanupSkipped event = %q, want the kept objects named", msg)
	}
}

// Deleting the Application of a chart with delete hooks uninstalls its
// Helm release through Helm: the pre-delete hook (a Job Helm waits for)
// runs before anything is deleted, the post-delete hook after; berth's
// own prune deletes the objects in between, so the chart's
// PersistentVolumeClaim is kept, as Helm's uninstall would not.
func TestDeletingAHelmApplicationRunsItsDeleteHooks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pvName := f.persistentVolume()
	sha := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).
		Write("chart/templates/pvc.yaml", strings.Replace(pvc, "%s", pvName, 1)).
		Write("chart/templates/pre-delete.yaml", backupHook("")).
		Write("chart/templates/post-delete.yaml", helmHook("ConfigMap", "goodbye", "post-delete", "data:\n  said: goodbye\n")).
		CommitAndPush("chart with delete hooks")
	f.createApp("hello", "chart")
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(sha))
	if f.get(&batchv1.Job{}, "backup") || f.get(&corev1.ConfigMap{}, "goodbye") {
		t.Fatal("a delete hook ran before the Application was deleted")
	}

	must(t, f.c.Delete(ctx, &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "hello"}}))
	f.waitGone(&berthv1.Application{}, "hello", 90*time.Second)
	job := &batchv1.Job{}
	if !f.get(job, "backup") {
		t.Error("the pre-delete hook's Job was never created")
	}
	goodbye := &corev1.ConfigMap{}
	if !f.get(goodbye, "goodbye") || goodbye.Data["said"] != "goodbye" {
		t.Error("the post-delete hook's ConfigMap was never created")
	}
	if f.get(&corev1.ConfigMap{}, "hello-config") {
		t.Error("the chart's ConfigMap is still there after its Application was deleted")
	}
	if !f.get(&corev1.PersistentVolumeClaim{}, "data") {
		t.Error("the chart's PersistentVolumeClaim was deleted with its Application; it must be kept")
	}
	rels, err := helmrelease.List(f.env.Config, f.ns)
	must(t, err)
	if len(rels) != 0 {
		t.Errorf("helm releases after the Application was deleted = %+v, want none", rels)
	}
	if msg := f.waitEvent("hello", "CleanedUp"); !strings.Contains(msg, "Helm release hello uninstalled (2 delete hook(s) run") ||
		!strings.Contains(msg, "PersistentVolumeClaim") {
		t.Errorf("CleanedUp event = %q, want the hooks run and the kept claim named", msg)
	}
}

// A pre-delete hook that fails (here a Job that never finishes, within the
// Application's health timeout) stops the cleanup with nothing deleted,
// and the Application's status says why while it waits to retry.
func TestAFailingPreDeleteHookDeletesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sha := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).
		Write("chart/templates/pre-delete.yaml", waitingHook).
		CommitAndPush("chart with a pre-delete hook that never finishes")
	f.createApp("hello", "chart", func(a *berthv1.Application) { a.Spec.HealthTimeout = &metav1.Duration{Duration: 3 * time.Second} })
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(sha))

	key := types.NamespacedName{Namespace: f.ns, Name: "hello"}
	must(t, f.c.Delete(ctx, &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "hello"}}))
	if msg := f.waitEvent("hello", "CleanupFailed"); !strings.Contains(msg, "before deleting anything") || !strings.Contains(msg, "nothing deleted") {
		t.Errorf("CleanupFailed event = %q, want the pre-delete hook's failure and nothing deleted", msg)
	}
	var app berthv1.Application
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		must(t, f.c.Get(ctx, key, &app))
		if c := meta.FindStatusCondition(app.Status.Conditions, berthv1.ConditionReady); c != nil && c.Reason == "Deleting" && strings.Contains(c.Message, "cleaning up failed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("conditions of the Application waiting on its cleanup = %+v, want Ready False, reason Deleting, saying why", app.Status.Conditions)
		}
	}
	if !f.get(&corev1.ConfigMap{}, "hello-config") {
		t.Error("the chart's ConfigMap was deleted, though its pre-delete hook failed")
	}
	rels, err := helmrelease.List(f.env.Config, f.ns)
	must(t, err)
	if len(rels) != 1 {
		t.Errorf("helm releases = %+v, want the release kept", rels)
	}
	// Let it go without waiting out the 10-minute retry.
	patch := []byte(`{"metadata":{"finalizers":null}}`)
	must(t, f.c.Patch(ctx, &app, client.RawPatch(types.MergePatchType, patch)))
	f.waitGone(&berthv1.Application{}, "hello", 30*time.Second)
}

// helmHook is a chart template: an object of kind (a Job or a
// ConfigMap) named name, run as a Helm hook on event, with body after its
// metadata.
func helmHook(kind, name, event, body string) string {
	return "apiVersion: " + map[string]string{"Job": "batch/v1", "ConfigMap": "v1"}[kind] + "\nkind: " + kind +
		"\nmetadata:\n  name: " + name + "\n  annotations:\n    helm.sh/hook: " + event + "\n" + body
}

// backupHook is a chart's pre-delete hook, the Job backup, whose pod
// carries podAnnotations (a YAML flow map, "" for none); the sandbox runs
// it to completion unless they select a failure.
func backupHook(podAnnotations string) string {
	meta := ""
	if podAnnotations != "" {
		meta = "    metadata:\n      annotations: " + podAnnotations + "\n"
	}
	return helmHook("Job", "backup", "pre-delete", "spec:\n  backoffLimit: 0\n  template:\n"+meta+
		"    spec:\n      restartPolicy: Never\n      containers:\n      - name: backup\n        image: example.test/backup:1\n")
}

// waitingHook is a chart's pre-delete hook whose pod runs until
// finishHook takes the sandbox's failure annotation off it.
var waitingHook = backupHook("{" + sandbox.FailAnnotation + ": never-ready}")

// startWaitingHook deletes Application app (a chart with waitingHook) and
// waits until the hook's Job is there.
func (f *fixture) startWaitingHook(app string) {
	f.t.Helper()
	must(f.t, f.c.Delete(context.Background(), &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: app}}))
	for deadline := time.Now().Add(30 * time.Second); !f.get(&batchv1.Job{}, "backup"); time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			f.t.Fatal("the pre-delete hook's Job did not start")
		}
	}
}

// finishHook lets waitingHook's pod succeed, and waits until its Job has.
func (f *fixture) finishHook() {
	f.t.Helper()
	ctx := context.Background()
	var pods corev1.PodList
	for deadline := time.Now().Add(30 * time.Second); len(pods.Items) == 0; time.Sleep(300 * time.Millisecond) {
		must(f.t, f.c.List(ctx, &pods, client.InNamespace(f.ns), client.MatchingLabels{"job-name": "backup"}))
		if time.Now().After(deadline) {
			f.t.Fatal("the hook's Job has no pod")
		}
	}
	patch := []byte(`{"metadata":{"annotations":{"` + sandbox.FailAnnotation + `":"none"}}}`)
	for i := range pods.Items {
		must(f.t, f.c.Patch(ctx, &pods.Items[i], client.RawPatch(types.MergePatchType, patch)))
	}
	job := &batchv1.Job{}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		must(f.t, f.c.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "backup"}, job))
		if job.Status.Succeeded > 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the hook's Job did not succeed: %+v", job.Status)
		}
	}
}

// A stopping agent (shutdown, or leadership lost) ends a delete hook's
// wait: the manager waits for the cleanups it runs off the workers, and
// stops within its grace period only because the hook's wait ends with the
// agent's leadership. The hook finishing afterwards does not have the
// stopped agent delete anything (the next leader runs the cleanup again).
func TestAStoppingAgentEndsADeleteHooksWait(t *testing.T) {
	f := newFixture(t)
	sha := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).Write("chart/templates/pre-delete.yaml", waitingHook).
		CommitAndPush("chart with a pre-delete hook that waits")
	f.createApp("hello", "chart", func(a *berthv1.Application) { a.Spec.HealthTimeout = &metav1.Duration{Duration: 10 * time.Minute} })
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(sha))

	f.startWaitingHook("hello")
	f.stopAgent(0)
	err := <-f.agentDone[0]
	f.agentDone[0] <- err
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("the agent stopped with %v, want it stopped cleanly (the hook's wait ended with it)", err)
	}
	// Had the stopped agent's cleanup gone on, it would see the hook
	// succeed and prune within a second or two: give it five.
	f.finishHook()
	time.Sleep(5 * time.Second)
	if !f.get(&corev1.ConfigMap{}, "hello-config") || !f.get(&berthv1.Application{}, "hello") {
		t.Error("the stopped agent went on with the cleanup once the hook finished")
	}
}

// A chart's delete hook that takes its time does not hold up the other
// Applications: with one worker, a commit to another Application is
// applied while the hook still runs (its cleanup runs off the workers),
// and the Application goes once the hook is done.
func TestADeleteHookDoesNotHoldUpOtherApplications(t *testing.T) {
	f := newFixture(t, fixtureOptions{concurrency: 1})
	f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).Write("chart/templates/pre-delete.yaml", waitingHook).
		Write("other/cm.yaml", cm("other", "v1"))
	sha := f.wt.CommitAndPush("a chart whose pre-delete hook waits, and another app")
	f.createApp("hello", "chart", func(a *berthv1.Application) { a.Spec.HealthTimeout = &metav1.Duration{Duration: 10 * time.Minute} })
	f.createApp("other", "other")
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(sha))
	f.waitApp("other", 60*time.Second, "other applied", appliedReady(sha))

	f.startWaitingHook("hello")
	next := f.wt.Write("other/cm.yaml", cm("other", "v2")).CommitAndPush("other v2")
	f.waitApp("other", 60*time.Second, "other v2 applied while the hook runs", appliedReady(next))
	if !f.get(&corev1.ConfigMap{}, "hello-config") {
		t.Fatal("the chart's ConfigMap was deleted before its pre-delete hook finished")
	}
	// The hook finishes: the cleanup goes on, and the Application goes.
	f.finishHook()
	f.waitGone(&berthv1.Application{}, "hello", 60*time.Second)
	if f.get(&corev1.ConfigMap{}, "hello-config") {
		t.Error("the chart's ConfigMap is still there after its cleanup")
	}
}

// An account that may not run the chart's delete hooks (it may write
// ConfigMaps and Helm's records, not Jobs) keeps everything: nothing is
// deleted without the hooks, and the Application goes at once.
func TestDeleteHooksTheAccountMayNotRunKeepEverything(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	must(t, f.c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "narrow", Namespace: f.ns}}))
	must(t, f.c.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "narrow", Namespace: f.ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets"}, Verbs: []string{"*"}}}}))
	must(t, f.c.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "narrow", Namespace: f.ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "narrow"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "narrow", Namespace: f.ns}}}))
	sha := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).
		Write("chart/templates/pre-delete.yaml", backupHook("")).
		CommitAndPush("chart with a pre-delete hook its account may not run")
	f.createApp("hello", "chart", func(a *berthv1.Application) { a.Spec.ServiceAccountName = "narrow" })
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(sha))

	must(t, f.c.Delete(ctx, &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "hello"}}))
	f.waitGone(&berthv1.Application{}, "hello", 60*time.Second)
	if !f.get(&corev1.ConfigMap{}, "hello-config") {
		t.Error("the chart's ConfigMap was deleted without its pre-delete hook")
	}
	if msg := f.waitEvent("hello", "CleanupSkipped"); !strings.Contains(msg, "may not run the delete hooks of Helm release hello") || !strings.Contains(msg, "kept") {
		t.Errorf("CleanupSkipped event = %q, want the hooks it may not run and everything kept", msg)
	}
}
