package install_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/install"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// `berth install --apply` on a real API server: every object is accepted
// (the namespace enforces the restricted pod security level on the
// agent's own pods), the agent's Deployment rolls out two replicas, the
// webhook Service selects the leader only, and applying again changes
// nothing.
func TestApplyInstallsTheAgent(t *testing.T) {
	env := testenv.Sandbox(t)
	ctx := context.Background()
	o := install.Options{Namespace: "berth-install-test", Image: "example.test/berth:1", Replicas: 2, DefaultServiceAccount: "deployer"}
	cs, err := install.Apply(ctx, env.Config, o)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	data, err := install.Manifests(o)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifest.Parse("install.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	// The sandbox may be shared with other packages: take away what the
	// install created, except the CRDs (which may have been there, and
	// others use).
	t.Cleanup(func() { uninstall(t, env, objs) })
	// The CRDs may be there already; the rest is new.
	applied := cs.Count(apply.Created) + cs.Count(apply.Unchanged) + cs.Count(apply.Configured)
	if len(cs.Entries) != len(objs) || applied != len(objs) || cs.Count(apply.Created) < len(objs)-2 {
		t.Fatalf("install: %s for %d objects in the manifests", cs.Summary(), len(objs))
	}
	kc, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	var d *appsv1.Deployment
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		d, err = kc.AppsV1().Deployments(o.Namespace).Get(ctx, "berth-agent", metav1.GetOptions{})
		if err == nil && d.Status.AvailableReplicas == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's Deployment did not roll out: %v %+v", err, d)
		}
	}
	pod := d.Spec.Template.Spec
	args := map[string]bool{}
	for _, a := range pod.Containers[0].Args {
		args[a] = true
	}
	for _, want := range []string{"--pod-name=$(POD_NAME)", "--webhook-secret-file=/etc/berth/webhook/hmac", "--webhook-gitlab-token-file=/etc/berth/webhook/gitlab-token", "--default-service-account=deployer"} {
		if !args[want] {
			t.Errorf("agent args %v lack %s", pod.Containers[0].Args, want)
		}
	}
	var secretVolume *corev1.SecretVolumeSource
	for _, v := range pod.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "berth-webhook" {
			secretVolume = v.Secret
		}
	}
	if secretVolume == nil || secretVolume.Optional == nil || !*secretVolume.Optional {
		t.Errorf("webhook Secret volume = %+v, want berth-webhook, optional", secretVolume)
	}
	svc, err := kc.CoreV1().Services(o.Namespace).Get(ctx, "berth-webhooks", metav1.GetOptions{})
	if err != nil || svc.Spec.Selector[berthv1.LeaderLabel] != "true" {
		t.Errorf("webhook Service selector = %v (%v), want the leader label", svc.Spec.Selector, err)
	}
	again, err := install.Apply(ctx, env.Config, o)
	if err != nil || again.Changed() {
		t.Errorf("applying the install again: %s, %v; want nothing changed", again.Summary(), err)
	}
}

// uninstall deletes objs from the sandbox, CRDs excepted.
func uninstall(t *testing.T, env *testenv.Env, objs []manifest.Object) {
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Error(err)
		return
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(env.Client.Discovery()))
	for _, o := range objs {
		u := o.Object
		if u.GetKind() == "CustomResourceDefinition" {
			continue
		}
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("uninstall %s: %v", o.ID(), err)
			continue
		}
		ri := dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		if m.Scope.Name() != meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource)
		}
		if err := ri.Delete(context.Background(), u.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("uninstall %s: %v", o.ID(), err)
		}
	}
}
