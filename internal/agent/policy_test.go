package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/helmrelease"
	"github.com/berth-dev/berth/internal/testenv"
)

func TestPolicyViolationRejectsRevision(t *testing.T) {
	f := newFixture(t)
	sha := f.wt.Write("app/cm.yaml", cm("settings", "x")).Write("app/deploy.yaml", strings.Replace(deploy("1"), "example.test/web:1", "example.test/web:latest", 1)).CommitAndPush("latest")
	f.createApp("demo", "app")
	if msg := f.waitRejected("demo", sha, "PolicyViolation"); !strings.Contains(msg, "image-latest-tag") || !strings.Contains(msg, "app/deploy.yaml") {
		t.Errorf("message %q does not name the rule and the file", msg)
	}
	if f.get(&corev1.ConfigMap{}, "settings") || f.get(&appsv1.Deployment{}, "web") {
		t.Error("part of a revision with an enforce violation was applied")
	}
}

// Helm runs a chart's hooks itself; they are checked by the policy gate
// like the rest, and a violating hook refuses the whole revision before
// Helm installs anything.
func TestHelmHookPolicyViolationRejectsRevision(t *testing.T) {
	f := newFixture(t)
	hook := "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-install,pre-upgrade\n" +
		"spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: example.test/migrate:latest\n"
	sha := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/values.yaml", "replicas: 1\nenv: default\n").
		Write("chart/templates/cm.yaml", chartTemplate).Write("chart/templates/migrate.yaml", hook).CommitAndPush("hooked chart")
	f.createApp("hello", "chart")
	if msg := f.waitRejected("hello", sha, "PolicyViolation"); !strings.Contains(msg, "image-latest-tag") || !strings.Contains(msg, "templates/migrate.yaml") {
		t.Errorf("message %q does not name the rule and the hook's template", msg)
	}
	rels, err := helmrelease.List(f.env.Config, f.ns)
	must(t, err)
	if len(rels) != 0 || f.get(&corev1.ConfigMap{}, "hello-config") {
		t.Errorf("a chart with a refused hook was installed: releases %+v", rels)
	}
}

func push(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(512, 1)
	must(t, err)
	tag, err := name.NewTag(ref, name.Insecure)
	must(t, err)
	must(t, remote.Write(tag, img))
	d, err := img.Digest()
	must(t, err)
	return d.String()
}

func TestImagesArePinnedAndMovedTagsRefused(t *testing.T) {
	f := newFixture(t)
	reg := testenv.NewRegistry(t)
	image := reg.Host + "/team/web:1"
	d1 := push(t, image)
	sha := f.wt.Write("app/deploy.yaml", strings.Replace(deploy("1"), "example.test/web:1", image, 1)).CommitAndPush("pinned")
	policyJSON := `{"images":{"insecureRegistries":["` + reg.Host + `"]}}`
	f.createApp("demo", "app", func(a *berthv1.Application) {
		a.Spec.Policy = &runtime.RawExtension{Raw: []byte(policyJSON)}
	})
	app := f.waitApp("demo", 60*time.Second, "applied", appliedReady(sha))
	var d appsv1.Deployment
	f.get(&d, "web")
	if got := d.Spec.Template.Spec.Containers[0].Image; got != image+"@"+d1 {
		t.Fatalf("applied image = %q, want %q", got, image+"@"+d1)
	}
	if len(app.Status.Images) != 1 || app.Status.Images[0].Digest != d1 || !strings.HasSuffix(app.Status.Images[0].Tag, "/team/web:1") {
		t.Errorf("status images = %+v", app.Status.Images)
	}

	// Someone re-pushes the tag: the next revision is refused.
	d2 := push(t, image)
	sha2 := f.wt.Write("app/cm.yaml", cm("other", "x")).CommitAndPush("unrelated change")
	app = f.waitApp("demo", 60*time.Second, "tag-moved refused", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return a.Status.LastFetchedRevision == sha2 && s != nil && s.Reason == "PolicyViolation"
	})
	msg := condition(app, berthv1.ConditionStalled).Message
	if !strings.Contains(msg, "image-tag-moved") || !strings.Contains(msg, d1) || !strings.Contains(msg, d2) {
		t.Errorf("message %q does not name the rule and both digests", msg)
	}
	f.get(&d, "web")
	if got := d.Spec.Template.Spec.Containers[0].Image; got != image+"@"+d1 {
		t.Errorf("image after a refused revision = %q", got)
	}
	if f.get(&corev1.ConfigMap{}, "other") {
		t.Error("a refused revision was partly applied")
	}
}

func TestUnreachableRegistryHoldsSyncWhenDigestsRequired(t *testing.T) {
	f := newFixture(t)
	reg := testenv.NewRegistry(t)
	image := reg.Host + "/team/web:1"
	push(t, image)
	reg.Close()
	sha := f.wt.Write("app/deploy.yaml", strings.Replace(deploy("1"), "example.test/web:1", image, 1)).CommitAndPush("needs digests")
	policyJSON := `{"rules":{"image-digest-required":{"mode":"enforce"}},"images":{"insecureRegistries":["` + reg.Host + `"]}}`
	f.createApp("demo", "app", func(a *berthv1.Application) {
		a.Spec.Policy = &runtime.RawExtension{Raw: []byte(policyJSON)}
	})
	app := f.waitApp("demo", 60*time.Second, "held", func(a *berthv1.Application) bool {
		c := condition(a, berthv1.ConditionReady)
		return a.Status.LastFetchedRevision == sha && c != nil && c.Reason == "ImagesUnresolved"
	})
	if msg := condition(app, berthv1.ConditionReady).Message; !strings.Contains(msg, "held") {
		t.Errorf("Ready message = %q", msg)
	}
	if f.get(&appsv1.Deployment{}, "web") {
		t.Error("a Deployment with an unresolved tag was applied while digests are required")
	}
}

// Helm installs the chart as berth rendered, checked and pinned it, not a
// second render of its own: a random value is the one berth applied, and
// the Deployment rolls out once, by digest (before: once by tag from
// Helm's render, then again when berth applied the digest).
func TestHelmInstallsWhatBerthRendered(t *testing.T) {
	f := newFixture(t)
	reg := testenv.NewRegistry(t)
	image := reg.Host + "/team/web:1"
	d1 := push(t, image)
	tmpl := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nonce\ndata:\n  nonce: {{ randAlphaNum 24 | quote }}\n---\n" +
		strings.Replace(deploy("1"), "example.test/web:1", image, 1)
	sha := f.wt.Write("chart/Chart.yaml", chartYAML).Write("chart/templates/all.yaml", tmpl).CommitAndPush("chart")
	policyJSON := `{"images":{"insecureRegistries":["` + reg.Host + `"]}}`
	f.createApp("hello", "chart", func(a *berthv1.Application) {
		a.Spec.Policy = &runtime.RawExtension{Raw: []byte(policyJSON)}
	})
	f.waitApp("hello", 60*time.Second, "chart applied", appliedReady(sha))
	hist, err := helmrelease.History(f.env.Config, f.ns, "hello")
	must(t, err)
	if len(hist) != 1 {
		t.Fatalf("helm history = %d releases", len(hist))
	}
	var c corev1.ConfigMap
	f.get(&c, "nonce")
	if c.Data["nonce"] == "" || !strings.Contains(hist[0].Manifest, c.Data["nonce"]) {
		t.Errorf("the cluster's nonce %q is not the one Helm released", c.Data["nonce"])
	}
	if !strings.Contains(hist[0].Manifest, image+"@"+d1) || !strings.Contains(hist[0].Manifest, "# Source: hello/templates/all.yaml") {
		t.Errorf("the Helm release does not hold the pinned image from its template:\n%s", hist[0].Manifest)
	}
	var rss appsv1.ReplicaSetList
	must(t, f.c.List(context.Background(), &rss, client.InNamespace(f.ns)))
	if len(rss.Items) != 1 {
		var images []string
		for _, rs := range rss.Items {
			images = append(images, rs.Spec.Template.Spec.Containers[0].Image)
		}
		t.Errorf("ReplicaSets = %v, want one rollout", images)
	}

	// The full passes that follow (every 2 s here) reuse the render of
	// the same commit: the random value is not drawn again, so no pass
	// is a new Helm release.
	for deadline := time.Now().Add(7 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if hist, err = helmrelease.History(f.env.Config, f.ns, "hello"); err != nil || len(hist) != 1 {
			t.Fatalf("a later pass of the same commit: %d Helm revisions (%v), want 1", len(hist), err)
		}
	}
	nonce := c.Data["nonce"]
	if f.get(&c, "nonce"); c.Data["nonce"] != nonce {
		t.Errorf("nonce %q became %q with no commit", nonce, c.Data["nonce"])
	}
	if rels := f.releases("hello"); len(rels) != 1 {
		t.Errorf("berth releases = %s, want the install alone", releaseSummary(rels))
	}
}

// The agent reads the repository root's .berth/policy.yaml only, as
// `berth check` does: a file an app team adds next to its manifests does
// not change what is enforced (here it would refuse the revision), and the
// PolicyCompliant condition says it is not read.
func TestNestedPolicyFileIsNotRead(t *testing.T) {
	f := newFixture(t)
	latest := strings.Replace(deploy("1"), "example.test/web:1", "example.test/web:latest", 1)
	sha := f.wt.Write("app/deploy.yaml", latest).
		Write("app/.berth/policy.yaml", "rules:\n  image-latest-tag: {mode: enforce}\n").
		Write(".berth/policy.yaml", "rules:\n  image-latest-tag: {mode: \"off\"}\n").CommitAndPush("latest allowed at the root")
	f.createApp("demo", "app")
	app := f.waitApp("demo", 60*time.Second, "applied under the root's policy file", func(a *berthv1.Application) bool {
		return a.Status.LastAppliedRevision == sha
	})
	if c := condition(app, "PolicyCompliant"); c == nil || !strings.Contains(c.Message, "app/.berth/policy.yaml is not read") {
		t.Errorf("PolicyCompliant = %+v, want the nested file named as not read", c)
	}

	sha = f.wt.Write(".berth/policy.yaml", "rules:\n  no-such-rule: {mode: enforce}\n").CommitAndPush("broken policy")
	if msg := f.waitRejected("demo", sha, "PolicyInvalid"); !strings.Contains(msg, ".berth/policy.yaml") || !strings.Contains(msg, "no-such-rule") {
		t.Errorf("message %q does not name the file and the rule", msg)
	}
}
