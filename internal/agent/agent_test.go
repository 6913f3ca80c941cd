package agent_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/helmrelease"
	"github.com/berth-dev/berth/internal/testenv"
	"github.com/berth-dev/berth/internal/webhook"
)

const configMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: %s
data:
  greeting: %s
`

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: example.test/web:%s
`

const pvc = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  storageClassName: manual
  volumeName: %s
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
`

func cm(name, greeting string) string {
	return strings.Replace(strings.Replace(configMap, "%s", name, 1), "%s", greeting, 1)
}
func deploy(tag string) string { return strings.Replace(deployment, "%s", tag, 1) }

func TestCommitAppliedAndPruned(t *testing.T) {
	f := newFixture(t)
	pvName := f.persistentVolume()
	sha1 := f.wt.Write("app/cm.yaml", cm("settings", "hello")).
		Write("app/web/deploy.yaml", deploy("1")).
		Write("app/pvc.yaml", strings.Replace(pvc, "%s", pvName, 1)).
		Write("app/extra.yaml", cm("extra", "x")).
		CommitAndPush("first")
	f.createApp("demo", "app")
	app := f.waitApp("demo", 60*time.Second, "first commit applied and healthy", appliedReady(sha1))
	if app.Status.Health != "Healthy" || app.Status.Sync != "Synced" || len(app.Status.Inventory) != 4 {
		t.Fatalf("status = %s, inventory %v", describeStatus(app), app.Status.Inventory)
	}
	var got corev1.ConfigMap
	if !f.get(&got, "settings") || got.Data["greeting"] != "hello" || got.Labels[berthv1.OwnerNameLabel] != "demo" {
		t.Fatalf("ConfigMap settings = %+v", got)
	}

	// Remove the extra ConfigMap and the PVC from Git: the ConfigMap is
	// pruned, the PVC is kept.
	sha2 := f.wt.Remove("app/extra.yaml").Remove("app/pvc.yaml").Write("app/cm.yaml", cm("settings", "bonjour")).CommitAndPush("second")
	app = f.waitApp("demo", 60*time.Second, "second commit applied", appliedReady(sha2))
	if f.get(&corev1.ConfigMap{}, "extra") {
		t.Error("ConfigMap extra was not pruned")
	}
	if !f.get(&corev1.PersistentVolumeClaim{}, "data") {
		t.Error("the PersistentVolumeClaim was pruned; it must be kept")
	}
	if !f.get(&got, "settings") || got.Data["greeting"] != "bonjour" {
		t.Errorf("settings greeting = %q, want bonjour", got.Data["greeting"])
	}
	if len(app.Status.Inventory) != 2 {
		t.Errorf("inventory = %v, want the ConfigMap and the Deployment", app.Status.Inventory)
	}
}

func TestDriftHealAndDetect(t *testing.T) {
	f := newFixture(t)
	sha := f.wt.Write("heal/cm.yaml", cm("healed", "git")).Write("detect/cm.yaml", cm("detected", "git")).CommitAndPush("drift")
	f.createApp("heal", "heal", func(a *berthv1.Application) { a.Spec.Source.Interval = &metav1.Duration{Duration: time.Hour} })
	f.createApp("detect", "detect", func(a *berthv1.Application) {
		a.Spec.Source.Interval = &metav1.Duration{Duration: time.Hour}
		a.Spec.SyncPolicy.Drift = berthv1.DriftDetect
	})
	f.waitApp("heal", 60*time.Second, "applied", appliedReady(sha))
	f.waitApp("detect", 60*time.Second, "applied", appliedReady(sha))
	ctx := context.Background()

	var edited corev1.ConfigMap
	f.get(&edited, "detected")
	edited.Data["greeting"] = "kubectl edit"
	must(t, f.c.Update(ctx, &edited))
	// heal: the watch brings the agent back long before the 1h poll.
	f.editAndWaitHealed("healed", "git")
	app := f.waitApp("heal", 10*time.Second, "heal recorded", func(a *berthv1.Application) bool { return a.Status.Drift != nil && a.Status.Drift.Healed > 0 })
	if app.Status.Drift.Objects[0] != "ConfigMap "+f.ns+"/healed" {
		t.Errorf("drift objects = %v", app.Status.Drift.Objects)
	}

	// detect: reported, not corrected.
	app = f.waitApp("detect", 30*time.Second, "drift reported", func(a *berthv1.Application) bool {
		c := condition(a, berthv1.ConditionDrifted)
		return c != nil && c.Status == metav1.ConditionTrue
	})
	if app.Status.Sync != "OutOfSync" || !strings.Contains(condition(app, berthv1.ConditionDrifted).Message, "detected") {
		t.Errorf("detect status = %s", describeStatus(app))
	}
	var c corev1.ConfigMap
	f.get(&c, "detected")
	if c.Data["greeting"] != "kubectl edit" {
		t.Errorf("detect mode changed the object back: %v", c.Data)
	}

	// A deleted object is re-created in heal mode.
	f.get(&c, "healed")
	must(t, f.c.Delete(ctx, &c))
	deadline := time.Now().Add(30 * time.Second)
	for !f.get(&corev1.ConfigMap{}, "healed") {
		if time.Now().After(deadline) {
			t.Fatal("deleted object not re-created after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A detect-mode Application sees drift through its watches after the
// agent restarts too (the new agent's watcher starts empty, and the
// detect pass, unlike a sync, set none up), long before its poll; and a
// Stalled its pass disproves (an account that lost, then got back, its
// rights) is cleared by that pass, not left until a new commit.
func TestDetectModeAfterARestart(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sha := f.wt.Write("detect/cm.yaml", cm("detected", "git")).CommitAndPush("detect")
	f.createApp("detect", "detect", func(a *berthv1.Application) {
		a.Spec.Source.Interval = &metav1.Duration{Duration: time.Hour}
		a.Spec.SyncPolicy.Drift = berthv1.DriftDetect
	})
	f.waitApp("detect", 60*time.Second, "applied", appliedReady(sha))

	f.stopAgent(0)
	f.startAgent(false, nil)
	// The new agent's first pass (a detect pass: nothing moved).
	time.Sleep(3 * time.Second)
	var edited corev1.ConfigMap
	f.get(&edited, "detected")
	edited.Data["greeting"] = "kubectl edit"
	must(t, f.c.Update(ctx, &edited))
	f.waitApp("detect", 20*time.Second, "drift reported after the restart, from the watch", func(a *berthv1.Application) bool {
		c := condition(a, berthv1.ConditionDrifted)
		return c != nil && c.Status == metav1.ConditionTrue
	})

	// The account loses its rights: the detect pass's dry run is refused.
	rb := &rbacv1.RoleBinding{}
	must(t, f.c.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "deployer-admin"}, rb))
	must(t, f.c.Delete(ctx, rb))
	f.get(&edited, "detected")
	edited.Data["greeting"] = "edited again"
	must(t, f.c.Update(ctx, &edited)) // a watch event, for a pass now
	f.waitApp("detect", 30*time.Second, "stalled without rights", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Status == metav1.ConditionTrue && s.Reason == "PermissionDenied"
	})
	rb.ResourceVersion = ""
	must(t, f.c.Create(ctx, rb))
	f.get(&edited, "detected")
	edited.Data["greeting"] = "and again"
	must(t, f.c.Update(ctx, &edited))
	f.waitApp("detect", 30*time.Second, "Stalled cleared once the rights are back", func(a *berthv1.Application) bool {
		d := condition(a, berthv1.ConditionDrifted)
		return condition(a, berthv1.ConditionStalled) == nil && d != nil && d.Status == metav1.ConditionTrue
	})
}

// Drift watches run as the Application's service account: one that may
// write a kind but not list and watch it is told so (the full pass finds
// drift there instead), and the Application is applied all the same.
func TestDriftWatchForbiddenIsReported(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	must(t, f.c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "writer", Namespace: f.ns}}))
	must(t, f.c.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "writer", Namespace: f.ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "patch"}}}}))
	must(t, f.c.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "writer", Namespace: f.ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "writer"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "writer", Namespace: f.ns}}}))
	sha := f.wt.Write("cfg/cm.yaml", cm("settings", "git")).CommitAndPush("settings")
	f.createApp("cfg", "cfg", func(a *berthv1.Application) { a.Spec.ServiceAccountName = "writer" })
	f.waitApp("cfg", 60*time.Second, "applied", appliedReady(sha))
	if msg := f.waitEvent("cfg", "DriftWatchForbidden"); !strings.Contains(msg, "configmaps") || !strings.Contains(msg, "system:serviceaccount:"+f.ns+":writer") {
		t.Fatalf("DriftWatchForbidden event = %q, want the kind and the account named", msg)
	}
}

// An Application whose path is not in Git yet (created a moment before
// the push that adds it, or read from a reference listing a moment old)
// says so and picks the path up soon, not at its next poll.
func TestApplicationPathPushedAfterItIsCreated(t *testing.T) {
	f := newFixture(t)
	f.wt.Write("other/cm.yaml", cm("other", "x")).
		Write(".gitmodules", "[submodule \"shared\"]\n\tpath = vendor/shared\n\turl = https://git.example.test/org/shared.git\n")
	testenv.Git(t, f.wt.Dir, "update-index", "--add", "--cacheinfo", "160000,"+strings.Repeat("ab", 20)+",vendor/shared")
	f.wt.CommitAndPush("other")
	f.createApp("late", "late", func(a *berthv1.Application) { a.Spec.Source.Interval = &metav1.Duration{Duration: time.Hour} })
	f.createApp("insub", "vendor/shared/app")
	f.waitApp("late", 30*time.Second, "path reported missing", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Reason == "RenderFailed" && strings.Contains(s.Message, `"late" does not exist at commit`)
	})
	// A path in a submodule says so, and names where its content lives.
	f.waitApp("insub", 30*time.Second, "submodule named", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Reason == "RenderFailed" && strings.Contains(s.Message, `in the Git submodule "vendor/shared" (https://git.example.test/org/shared.git)`)
	})
	sha := f.wt.Write("late/cm.yaml", cm("late", "here")).CommitAndPush("late")
	f.waitApp("late", 30*time.Second, "path applied without a webhook, long before the 1h poll", appliedReady(sha))
}

func TestInvalidRevisionsAreRejectedWhole(t *testing.T) {
	f := newFixture(t)
	good := f.wt.Write("app/a.yaml", cm("a", "v1")).Write("app/b.yaml", cm("b", "v1")).CommitAndPush("good")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "good revision applied", appliedReady(good))

	cases := []struct {
		name, file, content, want string
	}{
		{"invalid yaml", "app/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n", "broken.yaml"},
		{"unknown kind", "app/widget.yaml", "apiVersion: example.test/v1\nkind: Widget\nmetadata:\n  name: w\n", "unknown kind"},
		{"schema error", "app/schema.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\nspec:\n  nonsense: true\n", "schema.yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The bad file comes with a change to a.yaml: that change must not land.
			bad := f.wt.Write("app/a.yaml", cm("a", "v2-"+strings.ReplaceAll(c.name, " ", "-"))).Write(c.file, c.content).CommitAndPush("bad: " + c.name)
			app := f.waitApp("demo", 60*time.Second, "revision rejected", func(a *berthv1.Application) bool {
				s := condition(a, berthv1.ConditionStalled)
				return a.Status.LastFetchedRevision == bad && s != nil && s.Status == metav1.ConditionTrue
			})
			msg := condition(app, berthv1.ConditionStalled).Message
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, "rejected") {
				t.Errorf("Stalled message %q does not name %q", msg, c.want)
			}
			if app.Status.LastAppliedRevision != good {
				t.Errorf("last applied = %s, want the good %s", app.Status.LastAppliedRevision, good)
			}
			var a corev1.ConfigMap
			f.get(&a, "a")
			if a.Data["greeting"] != "v1" {
				t.Errorf("part of a rejected revision was applied: a = %v", a.Data)
			}
			f.wt.Remove(c.file).Write("app/a.yaml", cm("a", "v1"))
		})
	}
	fixed := f.wt.CommitAndPush("fixed")
	f.waitApp("demo", 60*time.Second, "recovered", appliedReady(fixed))
}

func TestGitServerDownKeepsStateAndRecovers(t *testing.T) {
	f := newFixture(t)
	sha := f.wt.Write("app/a.yaml", cm("a", "v1")).CommitAndPush("one")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "applied", appliedReady(sha))

	f.git.Stop()
	app := f.waitApp("demo", 30*time.Second, "fetch failure reported", func(a *berthv1.Application) bool {
		c := condition(a, berthv1.ConditionReady)
		return c != nil && c.Reason == "FetchFailed"
	})
	if msg := condition(app, berthv1.ConditionReady).Message; !strings.Contains(msg, "keeps running") {
		t.Errorf("Ready message %q does not say the last revision keeps running", msg)
	}
	if !f.get(&corev1.ConfigMap{}, "a") {
		t.Error("objects disappeared while Git was down")
	}
	f.git.Start(t)
	sha2 := f.wt.Write("app/a.yaml", cm("a", "v2")).CommitAndPush("two")
	f.waitApp("demo", 60*time.Second, "recovered", appliedReady(sha2))
}

// A push credits the release it caused, and only that one: an
// Application of the same repository the push did not change records its
// next release, made later from a poll, as a commit's.
func TestAWebhookCreditsOnlyTheReleaseItCaused(t *testing.T) {
	f := newFixture(t)
	v1 := f.wt.Write("app/a.yaml", cm("a", "v1")).Write("other/b.yaml", cm("b", "v1")).CommitAndPush("one")
	f.createApp("demo", "app")
	f.createApp("other", "other")
	f.waitApp("demo", 60*time.Second, "demo applied", appliedReady(v1))
	f.waitApp("other", 60*time.Second, "other applied", appliedReady(v1))

	v2 := f.wt.Write("app/a.yaml", cm("a", "v2")).CommitAndPush("two: demo only")
	body := []byte(`{"repository":{"clone_url":"` + f.git.RepoURL("apps") + `"}}`)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, f.hookURL+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", webhook.Sign([]byte(f.secret), body))
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("signed webhook = %d, want 202", resp.StatusCode)
	}
	f.waitApp("demo", 20*time.Second, "demo applied after the webhook", appliedReady(v2))
	f.waitApp("other", 20*time.Second, "other saw the push", func(a *berthv1.Application) bool { return a.Status.LastFetchedRevision == v2 })
	if rels := f.releases("demo"); rels[0].Spec.Trigger != berthv1.TriggerWebhook {
		t.Errorf("demo's release from the push: trigger %q, want %q", rels[0].Spec.Trigger, berthv1.TriggerWebhook)
	}

	v3 := f.wt.Write("other/b.yaml", cm("b", "v3")).CommitAndPush("three: other, no webhook")
	f.waitApp("other", 30*time.Second, "other applied from a poll", appliedReady(v3))
	if rels := f.releases("other"); rels[0].Spec.Trigger != berthv1.TriggerCommit {
		t.Errorf("other's release from a poll after a push that did not change it: trigger %q, want %q", rels[0].Spec.Trigger, berthv1.TriggerCommit)
	}
}

func TestWebhookTriggersImmediateSync(t *testing.T) {
	f := newFixture(t)
	sha := f.wt.Write("app/a.yaml", cm("a", "v1")).CommitAndPush("one")
	f.createApp("demo", "app", func(a *berthv1.Application) { a.Spec.Source.Interval = &metav1.Duration{Duration: time.Hour} })
	f.waitApp("demo", 60*time.Second, "applied", appliedReady(sha))

	sha2 := f.wt.Write("app/a.yaml", cm("a", "v2")).CommitAndPush("two")
	body := []byte(`{"repository":{"clone_url":"` + f.git.RepoURL("apps") + `"}}`)
	post := func(sig string) int {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, f.hookURL+"/hooks/github", bytes.NewReader(body))
		if sig != "" {
			req.Header.Set("X-Hub-Signature-256", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(""); code != http.StatusUnauthorized {
		t.Errorf("unsigned webhook = %d, want 401", code)
	}
	if code := post(webhook.Sign([]byte("wrong"), body)); code != http.StatusUnauthorized {
		t.Errorf("wrongly signed webhook = %d, want 401", code)
	}
	time.Sleep(3 * time.Second)
	if app := f.waitApp("demo", time.Second, "read", func(*berthv1.Application) bool { return true }); app.Status.LastAppliedRevision == sha2 {
		t.Fatal("a rejected webhook triggered a sync")
	}
	// GitLab's token travels in clear: it is its own, and the HMAC secret
	// does not open that endpoint.
	gitlab := func(token string) int {
		gl := []byte(`{"project":{"git_http_url":"` + f.git.RepoURL("apps") + `"}}`)
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, f.hookURL+"/hooks/gitlab", bytes.NewReader(gl))
		req.Header.Set("X-Gitlab-Token", token)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := gitlab(f.secret); code != http.StatusUnauthorized {
		t.Errorf("GitLab webhook with the HMAC secret = %d, want 401", code)
	}
	if code := post(webhook.Sign([]byte(f.secret), body)); code != http.StatusAccepted {
		t.Fatalf("signed webhook = %d, want 202", code)
	}
	f.waitApp("demo", 20*time.Second, "applied after the webhook", appliedReady(sha2))
	if code := gitlab(f.secret + "-gitlab"); code != http.StatusAccepted {
		t.Errorf("GitLab webhook with its token = %d, want 202", code)
	}
	// A rotated secret (a mounted Secret updated in place) is taken
	// without a restart; the old one stops working.
	must(t, os.WriteFile(f.secretFile, []byte("rotated-secret-2\n"), 0o600))
	if code := post(webhook.Sign([]byte(f.secret), body)); code != http.StatusUnauthorized {
		t.Errorf("webhook signed with the old secret after rotation = %d, want 401", code)
	}
	if code := post(webhook.Sign([]byte("rotated-secret-2"), body)); code != http.StatusAccepted {
		t.Errorf("webhook signed with the rotated secret = %d, want 202", code)
	}
}

func TestImpersonationWithoutRights(t *testing.T) {
	f := newFixture(t)
	sha := f.wt.Write("app/a.yaml", cm("a", "v1")).CommitAndPush("one")
	f.createApp("demo", "app", func(a *berthv1.Application) { a.Spec.ServiceAccountName = "nobody" })
	app := f.waitApp("demo", 60*time.Second, "permission error", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return a.Status.LastFetchedRevision == sha && s != nil && s.Reason == "PermissionDenied"
	})
	msg := condition(app, berthv1.ConditionStalled).Message
	if !strings.Contains(msg, "system:serviceaccount:"+f.ns+":nobody") {
		t.Errorf("message %q does not name the service account", msg)
	}
	if f.get(&corev1.ConfigMap{}, "a") {
		t.Error("an object was created without permission")
	}
}

func TestApplicationWithoutServiceAccountIsRefused(t *testing.T) {
	f := newFixture(t)
	f.wt.Write("app/a.yaml", cm("a", "v1")).CommitAndPush("one")
	f.createApp("demo", "app", func(a *berthv1.Application) { a.Spec.ServiceAccountName = "" })
	f.waitApp("demo", 30*time.Second, "refused", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Reason == "NoServiceAccount"
	})
}

// A name longer than a label value is refused: berth labels everything it
// applies with it, and two names cut to the same 63 characters would own
// (and prune) each other's objects.
func TestApplicationWithTooLongANameIsRefused(t *testing.T) {
	f := newFixture(t)
	f.wt.Write("app/a.yaml", cm("a", "v1")).CommitAndPush("one")
	name := strings.Repeat("a", 64)
	f.createApp(name, "app")
	app := f.waitApp(name, 30*time.Second, "refused", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Reason == "NameTooLong"
	})
	if msg := condition(app, berthv1.ConditionStalled).Message; !strings.Contains(msg, "64 characters") {
		t.Errorf("message = %q", msg)
	}
	if f.get(&corev1.ConfigMap{}, "a") {
		t.Error("an object was applied for an Application whose name cannot label it")
	}
}

const chartYAML = `apiVersion: v2
name: hello
version: 0.1.0
`

const chartTemplate = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  replicas: {{ .Values.replicas | quote }}
  env: {{ .Values.env | quote }}
`

func TestHelmChartBecomesARelease(t *testing.T) {
	f := newFixture(t)
	sha := f.wt.Write("chart/Chart.yaml", chartYAML).
		Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/values-staging.yaml", "env: staging\n").
		Write("chart/templates/cm.yaml", chartTemplate).CommitAndPush("chart")
	f.createApp("hello", "chart")
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(sha))
	var c corev1.ConfigMap
	if !f.get(&c, "hello-config") || c.Data["env"] != "staging" || c.Data["replicas"] != "1" {
		t.Fatalf("rendered ConfigMap = %v", c.Data)
	}
	rels, err := helmrelease.List(f.env.Config, f.ns)
	must(t, err)
	if len(rels) != 1 || rels[0].Name != "hello" || rels[0].Status != "deployed" || rels[0].Version != 1 {
		t.Fatalf("helm releases = %+v, want hello v1 deployed", rels)
	}
	sha2 := f.wt.Write("chart/values.yaml", "replicas: 3\nenv: default\n").CommitAndPush("scale")
	f.waitApp("hello", 60*time.Second, "upgrade applied", appliedReady(sha2))
	hist, err := helmrelease.History(f.env.Config, f.ns, "hello")
	must(t, err)
	if len(hist) != 2 || hist[1].Status != "deployed" {
		t.Fatalf("helm history = %+v, want 2 revisions", hist)
	}
	f.get(&c, "hello-config")
	if c.Data["replicas"] != "3" {
		t.Errorf("replicas = %q after upgrade", c.Data["replicas"])
	}
}

// Helm installs the hooks berth rendered and checked, not a render of its
// own: a hook whose template reads .Release.Revision (berth renders as an
// install, revision 1) is the same on an upgrade, so what the policy gate
// passed is what runs, and no template runs in the agent's own process,
// where one that never ends could not be stopped.
func TestAChartsHooksAreTheOnesBerthChecked(t *testing.T) {
	f := newFixture(t)
	hook := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hook-{{ .Release.Revision }}\n  annotations:\n    helm.sh/hook: post-install,post-upgrade\n" +
		"data:\n  spin: \"{{ if gt (int .Release.Revision) 1 }}{{ range until 100000000 }}x{{ end }}{{ end }}\"\n"
	v1 := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).Write("chart/templates/hook.yaml", hook).CommitAndPush("v1")
	f.createApp("hello", "chart")
	f.waitApp("hello", 60*time.Second, "v1", appliedReady(v1))
	v2 := f.wt.Write("chart/values.yaml", "replicas: 2\nenv: default\n").CommitAndPush("v2")
	f.waitApp("hello", 60*time.Second, "v2 upgraded", appliedReady(v2))
	hist, err := helmrelease.History(f.env.Config, f.ns, "hello")
	must(t, err)
	if len(hist) != 2 || hist[1].Status != "deployed" {
		t.Fatalf("helm history = %+v, want 2 revisions, the second deployed", hist)
	}
	if f.get(&corev1.ConfigMap{}, "hook-2") {
		t.Error("the upgrade ran hook-2, Helm's own render of the hook, not the one berth checked (hook-1)")
	}
	var c corev1.ConfigMap
	if !f.get(&c, "hook-1") || c.Data["spin"] != "" {
		t.Errorf("hook-1 = %v, want berth's render of the hook", c.Data)
	}
}

// A chart whose subchart brings CRDs in its crds/ directory (one file,
// two CRDs, starting with "---", as controller-gen writes them), and whose
// templates hold custom resources of those kinds, applies, also when an
// upgrade adds them: Helm installs crds/ on a first install only, so berth
// applies them before Helm's upgrade.
func TestAChartWithASubchartsCRDInstalls(t *testing.T) {
	f := newFixture(t)
	group := strings.ReplaceAll(f.ns, "-", "") + ".example.test"
	crd := func(kind, plural string) string {
		return "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: " + plural + "." + group + "\nspec:\n  group: " + group +
			"\n  scope: Namespaced\n  names: {plural: " + plural + ", singular: " + strings.ToLower(kind) + ", kind: " + kind + "}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n" +
			"    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n"
	}
	t.Cleanup(func() {
		for _, n := range []string{"widgets", "gadgets"} {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
			u.SetName(n + "." + group)
			_ = f.c.Delete(context.Background(), u)
		}
	})
	f.wideAccount()
	v1 := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).CommitAndPush("a chart")
	f.createApp("hello", "chart", func(a *berthv1.Application) { a.Spec.ServiceAccountName = "wide" })
	f.waitApp("hello", 60*time.Second, "chart installed", appliedReady(v1))

	v2 := f.wt.Write("chart/templates/widgets.yaml", "apiVersion: "+group+"/v1\nkind: Widget\nmetadata:\n  name: w\n---\napiVersion: "+group+"/v1\nkind: Gadget\nmetadata:\n  name: g\n").
		Write("chart/charts/crds/Chart.yaml", "apiVersion: v2\nname: crds\nversion: 0.1.0\n").
		Write("chart/charts/crds/crds/all.yaml", "# generated\n"+crd("Widget", "widgets")+crd("Gadget", "gadgets")).
		CommitAndPush("a subchart with two CRDs, and resources of their kinds")
	f.waitApp("hello", 60*time.Second, "upgrade applied", appliedReady(v2))
	for kind, name := range map[string]string{"Widget": "w", "Gadget": "g"} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: group, Version: "v1", Kind: kind})
		must(t, f.c.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: name}, u))
	}
}

// A chart Application does not take an object another Helm release
// installed: Helm would adopt it, and the other release would break.
func TestAChartDoesNotTakeAnotherHelmReleasesObject(t *testing.T) {
	f := newFixture(t)
	must(t, f.c.Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "hello-config", Namespace: f.ns,
		Labels:      map[string]string{"app.kubernetes.io/managed-by": "Helm"},
		Annotations: map[string]string{"meta.helm.sh/release-name": "theirs", "meta.helm.sh/release-namespace": f.ns}}}))
	f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).CommitAndPush("chart")
	f.createApp("hello", "chart")
	app := f.waitApp("hello", 60*time.Second, "refused", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Status == metav1.ConditionTrue && s.Reason == "ObjectClaimed"
	})
	if msg := condition(app, berthv1.ConditionStalled).Message; !strings.Contains(msg, "Helm release theirs") || !strings.Contains(msg, "releaseName") {
		t.Errorf("Stalled message = %q, want the other release and the way to take it over named", msg)
	}
	var c corev1.ConfigMap
	if f.get(&c, "hello-config"); c.Annotations["meta.helm.sh/release-name"] != "theirs" {
		t.Errorf("the ConfigMap's release annotation is %q, want it left to theirs", c.Annotations["meta.helm.sh/release-name"])
	}
}

// Two Applications cannot share a Helm release: the second one, whose
// release name is the first one's, is refused with a reason, and the
// release keeps the first one's chart. Once the first is gone, the second
// takes the release over.
func TestTwoApplicationsCannotShareAHelmRelease(t *testing.T) {
	f := newFixture(t)
	chartOf := func(dir, cmName string) {
		f.wt.Write(dir+"/Chart.yaml", chartYAML).Write(dir+"/values.yaml", "replicas: 1\nenv: default\n").
			Write(dir+"/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "+cmName+"\ndata:\n  k: v\n")
	}
	chartOf("one", "one-config")
	chartOf("two", "two-config")
	v1 := f.wt.CommitAndPush("two charts")
	f.createApp("one", "one")
	f.waitApp("one", 60*time.Second, "one applied", appliedReady(v1))
	f.createApp("two", "two", func(a *berthv1.Application) { a.Spec.Helm = &berthv1.HelmSpec{ReleaseName: "one"} })
	app := f.waitApp("two", 60*time.Second, "two refused", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Status == metav1.ConditionTrue && s.Reason == "ReleaseNameTaken"
	})
	if msg := condition(app, berthv1.ConditionStalled).Message; !strings.Contains(msg, f.ns+"/one") || !strings.Contains(msg, "releaseName") {
		t.Errorf("Stalled message = %q, want the other Application and the way out named", msg)
	}
	hist, err := helmrelease.History(f.env.Config, f.ns, "one")
	must(t, err)
	if len(hist) != 1 || f.get(&corev1.ConfigMap{}, "two-config") {
		t.Fatalf("helm history of one = %d revisions, two-config written %v; want the release left as one made it", len(hist), f.get(&corev1.ConfigMap{}, "two-config"))
	}

	// The first goes, keeping its objects (prune off): the second may
	// take the release.
	must(t, f.c.Patch(context.Background(), &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "one"}},
		client.RawPatch(types.MergePatchType, []byte(`{"spec":{"syncPolicy":{"prune":false}}}`))))
	time.Sleep(3 * time.Second) // the agent sees the change before the delete
	must(t, f.c.Delete(context.Background(), &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "one"}}))
	f.waitApp("two", 60*time.Second, "two applied once one is gone", appliedReady(v1))
	if !f.get(&corev1.ConfigMap{}, "two-config") {
		t.Fatal("two-config not written after the release was taken over")
	}
}

// An Application whose plain YAML becomes a chart rendering the same
// object hands that object to the chart's Helm release: Helm adopts what
// berth's own checks let the Application take (its own objects, or ones
// without berth's labels) instead of refusing them as not its own.
func TestPlainYAMLTurnedIntoAChartIsAdoptedByTheRelease(t *testing.T) {
	f := newFixture(t)
	v1 := f.wt.Write("app/cm.yaml", cm("hello-config", "plain")).CommitAndPush("plain YAML")
	f.createApp("hello", "app")
	f.waitApp("hello", 60*time.Second, "plain applied", appliedReady(v1))

	v2 := f.wt.Remove("app/cm.yaml").Write("app/Chart.yaml", chartYAML).
		Write("app/values.yaml", "replicas: 2\nenv: default\n").
		Write("app/templates/cm.yaml", chartTemplate).CommitAndPush("the same ConfigMap, from a chart")
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(v2))
	var c corev1.ConfigMap
	if !f.get(&c, "hello-config") || c.Data["replicas"] != "2" || c.Annotations["meta.helm.sh/release-name"] != "hello" {
		t.Fatalf("ConfigMap = %v %v, want the chart's, owned by release hello", c.Data, c.Annotations)
	}
	rels, err := helmrelease.List(f.env.Config, f.ns)
	must(t, err)
	if len(rels) != 1 || rels[0].Name != "hello" || rels[0].Status != "deployed" {
		t.Fatalf("helm releases = %+v, want hello deployed", rels)
	}
}

// A chart that keeps a generated password across upgrades with `lookup`
// keeps it under berth: the agent's render reads the cluster, as the
// Application's account, and renders an upgrade as one. An account that
// may not read what the chart looks up is told so, and nothing changes.
func TestHelmLookupKeepsAGeneratedPassword(t *testing.T) {
	f := newFixture(t)
	secret := `{{- $s := lookup "v1" "Secret" .Release.Namespace "db-password" }}
apiVersion: v1
kind: Secret
metadata:
  name: db-password
  annotations: {upgrade: {{ .Release.IsUpgrade | quote }}}
data:
  password: {{ if $s }}{{ index $s.data "password" }}{{ else }}{{ randAlphaNum 24 | b64enc }}{{ end }}
`
	sha := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).Write("chart/templates/secret.yaml", secret).CommitAndPush("chart")
	f.createApp("hello", "chart")
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(sha))
	var s corev1.Secret
	f.get(&s, "db-password")
	first := string(s.Data["password"])
	if len(first) != 24 || s.Annotations["upgrade"] != "false" {
		t.Fatalf("installed password %q, annotations %v", first, s.Annotations)
	}

	sha2 := f.wt.Write("chart/values.yaml", "replicas: 3\nenv: default\n").CommitAndPush("scale")
	f.waitApp("hello", 60*time.Second, "upgrade applied", appliedReady(sha2))
	hist, err := helmrelease.History(f.env.Config, f.ns, "hello")
	must(t, err)
	f.get(&s, "db-password")
	if got := string(s.Data["password"]); got != first || s.Annotations["upgrade"] != "true" || len(hist) != 2 {
		t.Fatalf("after the upgrade: password %q (was %q), annotations %v, %d Helm revisions; want the same password, an upgrade, 2 revisions", got, first, s.Annotations, len(hist))
	}

	// An account that may write and list Secrets (Helm's history) but not
	// read one: the lookup is refused, the revision with it, and release 2
	// keeps running.
	ctx := context.Background()
	must(t, f.c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "blind", Namespace: f.ns}}))
	must(t, f.c.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "blind", Namespace: f.ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"*"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list", "create", "patch", "update"}}}}))
	must(t, f.c.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "blind", Namespace: f.ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "blind"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "blind", Namespace: f.ns}}}))
	must(t, f.c.Patch(ctx, &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "hello"}},
		client.RawPatch(types.MergePatchType, []byte(`{"spec":{"serviceAccountName":"blind"}}`))))
	sha3 := f.wt.Write("chart/values.yaml", "replicas: 4\nenv: default\n").CommitAndPush("scale again")
	msg := f.waitRejected("hello", sha3, "RenderFailed")
	if !strings.Contains(msg, "lookup v1 Secret "+f.ns+"/db-password as system:serviceaccount:"+f.ns+":blind") || !strings.Contains(msg, "forbidden") {
		t.Errorf("rejection = %q, want the lookup, the account and forbidden", msg)
	}
	var c corev1.ConfigMap
	f.get(&c, "hello-config")
	if hist, _ = helmrelease.History(f.env.Config, f.ns, "hello"); len(hist) != 2 || c.Data["replicas"] != "3" {
		t.Errorf("after the refused lookup: %d Helm revisions, replicas %q; want 2 and 3", len(hist), c.Data["replicas"])
	}
}

// An override in the Application (spec.helm.values) on the commit already
// applied is a release like a commit's: a Helm upgrade that holds the new
// values, and a berth release (trigger "render") with its way back, not
// a correction applied over the Helm release.
func TestHelmValuesOverrideIsARelease(t *testing.T) {
	f := newFixture(t)
	sha := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).CommitAndPush("chart")
	f.createApp("hello", "chart", func(a *berthv1.Application) { a.Spec.Source.Interval = &metav1.Duration{Duration: time.Hour} })
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(sha))
	f.waitReleasesHealthy("hello", 1)

	must(t, f.c.Patch(context.Background(), &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "hello"}},
		client.RawPatch(types.MergePatchType, []byte(`{"spec":{"helm":{"values":{"replicas":5}}}}`))))
	f.waitReleasesHealthy("hello", 2)
	var c corev1.ConfigMap
	f.get(&c, "hello-config")
	hist, err := helmrelease.History(f.env.Config, f.ns, "hello")
	must(t, err)
	rels := f.releases("hello")
	if c.Data["replicas"] != "5" || len(hist) != 2 || !strings.Contains(hist[1].Manifest, `replicas: "5"`) ||
		rels[0].Spec.Trigger != berthv1.TriggerRender || rels[0].Spec.Commit != sha {
		t.Fatalf("after the override: replicas %q, %d Helm revisions, releases %s; want 5, 2 and a render release of %s", c.Data["replicas"], len(hist), releaseSummary(rels), sha)
	}

	// With automated sync off, the next override waits for `berth sync`,
	// and says what it is.
	must(t, f.c.Patch(context.Background(), &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "hello"}},
		client.RawPatch(types.MergePatchType, []byte(`{"spec":{"syncPolicy":{"automated":false},"helm":{"values":{"replicas":7}}}}`))))
	app := f.waitApp("hello", 30*time.Second, "awaiting a manual sync", func(a *berthv1.Application) bool {
		c := condition(a, berthv1.ConditionReconciling)
		return a.Status.Sync == "OutOfSync" && c != nil && c.Reason == "AwaitingSync"
	})
	if msg := condition(app, berthv1.ConditionReconciling).Message; !strings.Contains(msg, "renders other manifests than applied") {
		t.Errorf("message %q does not say the applied commit renders anew", msg)
	}
	if f.get(&c, "hello-config"); c.Data["replicas"] != "5" || len(f.releases("hello")) != 2 {
		t.Errorf("automated sync is off, yet replicas = %q with releases %s", c.Data["replicas"], releaseSummary(f.releases("hello")))
	}
}

// A commit that changes only a chart's hook (Helm keeps hooks out of the
// release manifest) is a new Helm release, so Helm runs the new hook.
func TestHelmHookChangeIsANewRelease(t *testing.T) {
	f := newFixture(t)
	hook := func(step string) string {
		return "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-install,pre-upgrade\n" +
			"spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: example.test/migrate:1\n        args: [" + step + "]\n"
	}
	sha := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).Write("chart/templates/migrate.yaml", hook("one")).CommitAndPush("chart")
	f.createApp("hello", "chart")
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(sha))
	sha2 := f.wt.Write("chart/templates/migrate.yaml", hook("two")).CommitAndPush("hook only")
	f.waitApp("hello", 60*time.Second, "hook change applied", appliedReady(sha2))
	hist, err := helmrelease.History(f.env.Config, f.ns, "hello")
	must(t, err)
	if len(hist) != 2 || hist[1].Status != "deployed" {
		t.Fatalf("helm history = %+v, want a second release for the hook change", hist)
	}
}

// A chart that branches on .Capabilities renders in the agent as Helm
// installs it: for the cluster, not for Helm's defaults. berth applies its
// render over Helm's, so before, the defaults won in the cluster.
func TestHelmSeesTheClustersCapabilities(t *testing.T) {
	f := newFixture(t)
	tmpl := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caps\ndata:\n" +
		"  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n" +
		"  berth: {{ .Capabilities.APIVersions.Has \"berth.dev/v1alpha1/Application\" | quote }}\n"
	sha := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/templates/caps.yaml", tmpl).CommitAndPush("caps")
	f.createApp("hello", "chart")
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(sha))
	v, err := f.env.Client.Discovery().ServerVersion()
	must(t, err)
	var c corev1.ConfigMap
	if !f.get(&c, "caps") || c.Data["berth"] != "true" || c.Data["kube"] != v.GitVersion {
		t.Errorf("caps = %v, want berth: true and kube: %s", c.Data, v.GitVersion)
	}
}

func TestKustomizeOverlay(t *testing.T) {
	f := newFixture(t)
	sha := f.wt.Write("kust/base/kustomization.yaml", "resources: [cm.yaml]\n").
		Write("kust/base/cm.yaml", cm("settings", "base")).
		Write("kust/overlays/staging/kustomization.yaml", "resources: [../../base]\nnamePrefix: staging-\npatches:\n- patch: |-\n    - op: replace\n      path: /data/greeting\n      value: staging\n  target:\n    kind: ConfigMap\n").
		CommitAndPush("kustomize")
	f.createApp("kust", "kust/overlays/staging")
	app := f.waitApp("kust", 60*time.Second, "overlay applied", appliedReady(sha))
	if app.Status.Renderer != "kustomize" {
		t.Errorf("renderer = %q", app.Status.Renderer)
	}
	var c corev1.ConfigMap
	if !f.get(&c, "staging-settings") || c.Data["greeting"] != "staging" {
		t.Fatalf("overlay ConfigMap = %v", c.Data)
	}
}

func TestUnhealthyRolloutIsFailedFast(t *testing.T) {
	f := newFixture(t)
	bad := strings.Replace(deploy("2-never-ready"), "spec:\n  replicas: 2", "spec:\n  progressDeadlineSeconds: 5\n  replicas: 2", 1)
	sha := f.wt.Write("app/deploy.yaml", bad).CommitAndPush("bad image")
	f.createApp("demo", "app")
	app := f.waitApp("demo", 90*time.Second, "health failed", func(a *berthv1.Application) bool {
		return a.Status.LastAppliedRevision == sha && a.Status.Health == "Degraded"
	})
	c := condition(app, berthv1.ConditionReady)
	if c.Status != metav1.ConditionFalse || c.Reason != "HealthCheckFailed" || !strings.Contains(c.Message, "Deployment") {
		t.Errorf("Ready = %+v", c)
	}
	var d appsv1.Deployment
	f.get(&d, "web")
}

func TestLeaderElectionOnlyOneActs(t *testing.T) {
	f := newFixture(t, fixtureOptions{noAgent: true})
	e1, e2 := make(chan struct{}), make(chan struct{})
	f.startAgent(true, e1)
	f.startAgent(true, e2)
	var leader int
	select {
	case <-e1:
		leader = 0
	case <-e2:
		leader = 1
	case <-time.After(30 * time.Second):
		t.Fatal("no agent became leader")
	}
	// The other must not be elected while the leader runs.
	other := []chan struct{}{e1, e2}[1-leader]
	select {
	case <-other:
		t.Fatal("both agents were elected")
	case <-time.After(3 * time.Second):
	}
	sha := f.wt.Write("app/a.yaml", cm("a", "v1")).CommitAndPush("one")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "applied by the leader", appliedReady(sha))

	// Stop the leader: the other takes over and applies the next commit.
	f.agentStops[leader]()
	select {
	case <-other:
	case <-time.After(60 * time.Second):
		t.Fatal("the standby agent did not take over")
	}
	sha2 := f.wt.Write("app/a.yaml", cm("a", "v2")).CommitAndPush("two")
	f.waitApp("demo", 60*time.Second, "applied by the new leader", appliedReady(sha2))
}

// A revision that renders nothing would prune everything the Application
// holds: it is refused, saying why, unless the Application allows an empty
// revision.
func TestAnEmptyRevisionIsRefusedUnlessAllowed(t *testing.T) {
	f := newFixture(t)
	v1 := f.wt.Write("app/a.yaml", cm("a", "x")).CommitAndPush("a")
	f.createApp("demo", "app")
	f.waitApp("demo", 60*time.Second, "v1", appliedReady(v1))

	v2 := f.wt.Write("app/a.yaml", "# everything moved elsewhere\n").CommitAndPush("nothing left")
	app := f.waitApp("demo", 60*time.Second, "the empty revision refused", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return a.Status.LastFetchedRevision == v2 && s != nil && s.Status == metav1.ConditionTrue && s.Reason == "EmptyRevision"
	})
	if msg := condition(app, berthv1.ConditionStalled).Message; !strings.Contains(msg, "renders no object") || !strings.Contains(msg, "allowEmpty") {
		t.Errorf("Stalled message = %q", msg)
	}
	if !f.get(&corev1.ConfigMap{}, "a") {
		t.Fatal("the empty revision pruned the ConfigMap")
	}

	must(t, f.c.Patch(context.Background(), &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "demo"}},
		client.RawPatch(types.MergePatchType, []byte(`{"spec":{"syncPolicy":{"allowEmpty":true}}}`))))
	f.waitApp("demo", 60*time.Second, "the empty revision applied", appliedReady(v2))
	if f.get(&corev1.ConfigMap{}, "a") {
		t.Error("with allowEmpty the empty revision did not prune the ConfigMap")
	}
}

// A chart revision that adds a Namespace and, in it, an object the API
// server refuses is refused whole before Helm writes anything: the
// server checks the object's schema in the dry run even while its
// namespace does not exist yet, so Helm's write, which has no staging of
// its own, never starts.
func TestAChartWithABadObjectInANewNamespaceWritesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// An account that could create the Namespace and write in it.
	f.wideAccount()
	v1 := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).CommitAndPush("v1")
	f.createApp("hello", "chart", func(a *berthv1.Application) { a.Spec.ServiceAccountName = "wide" })
	f.waitApp("hello", 60*time.Second, "v1", appliedReady(v1))
	newNS := f.ns + "-x"
	t.Cleanup(func() {
		_ = f.c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: newNS}})
	})
	v2 := f.wt.Write("chart/templates/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: "+newNS+"\n").
		Write("chart/templates/bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\n  namespace: "+newNS+"\nbogus: field\n").
		CommitAndPush("v2: a new namespace and a ConfigMap there with an unknown field")
	app := f.waitApp("hello", 60*time.Second, "v2 refused", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return a.Status.LastFetchedRevision == v2 && s != nil && s.Status == metav1.ConditionTrue && s.Reason == "ValidationFailed"
	})
	if msg := condition(app, berthv1.ConditionStalled).Message; !strings.Contains(msg, "bad.yaml") || !strings.Contains(msg, "bogus") {
		t.Errorf("Stalled message = %q, want the file and the field named", msg)
	}
	if err := f.c.Get(ctx, types.NamespacedName{Name: newNS}, &corev1.Namespace{}); !apierrors.IsNotFound(err) {
		t.Errorf("Namespace %s of the refused revision: %v, want it never created", newNS, err)
	}
	hist, err := helmrelease.History(f.env.Config, f.ns, "hello")
	must(t, err)
	if len(hist) != 1 {
		t.Errorf("helm history = %+v, want only v1's release", hist)
	}
}
