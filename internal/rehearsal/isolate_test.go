package rehearsal

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/manifest"
)

func object(apiVersion, kind, namespace, name string) manifest.Object {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(namespace)
	u.SetName(name)
	u.SetLabels(map[string]string{berthv1.OwnerNameLabel: "shop", berthv1.OwnerNamespaceLabel: "apps", "app": "web"})
	return manifest.Object{Object: u}
}

func namespacedKinds(gvk schema.GroupVersionKind) bool {
	return gvk.Kind != "Namespace" && gvk.Kind != "ClusterRole"
}

func TestIsolate(t *testing.T) {
	rb := object("rbac.authorization.k8s.io/v1", "RoleBinding", "shop", "web")
	rb.Object.Object["subjects"] = []any{
		map[string]any{"kind": "ServiceAccount", "name": "web", "namespace": "shop"},
		map[string]any{"kind": "ServiceAccount", "name": "monitor", "namespace": "monitoring"},
	}
	in := []manifest.Object{
		object("apps/v1", "Deployment", "shop", "web"),
		object("v1", "ConfigMap", "", "unset"),
		object("v1", "Namespace", "", "shop"),
		object("rbac.authorization.k8s.io/v1", "ClusterRole", "", "reader"),
		object("v1", "ConfigMap", "other", "elsewhere"),
		rb,
	}
	s := isolate(in, "shop", "scratch", namespacedKinds)
	if diff := cmp.Diff([]string{"apps/Deployment scratch/web", "ConfigMap scratch/unset", "rbac.authorization.k8s.io/RoleBinding scratch/web"}, ids(s.isolated)); diff != "" {
		t.Errorf("isolated (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Namespace shop", "rbac.authorization.k8s.io/ClusterRole reader", "ConfigMap other/elsewhere"}, ids(s.checkOnly)); diff != "" {
		t.Errorf("dry-run only (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{DrillLabel: "scratch", "app": "web"}, s.isolated[0].Object.GetLabels()); diff != "" {
		t.Errorf("labels of an isolated object (-want +got):\n%s", diff)
	}
	subjects, _, _ := unstructured.NestedSlice(s.isolated[2].Object.Object, "subjects")
	if got := []any{subjects[0].(map[string]any)["namespace"], subjects[1].(map[string]any)["namespace"]}; !cmp.Equal(got, []any{"scratch", "monitoring"}) {
		t.Errorf("RoleBinding subject namespaces = %v, want [scratch monitoring]", got)
	}
	// The release's own objects are not modified.
	if in[0].Object.GetNamespace() != "shop" || in[0].Object.GetLabels()[berthv1.OwnerNameLabel] != "shop" {
		t.Errorf("isolate modified its input: %v", in[0].Object)
	}
}

func TestGoneNeverPrunesPersistentVolumeClaims(t *testing.T) {
	prev := []manifest.Object{
		object("apps/v1", "Deployment", "s", "web"),
		object("v1", "ConfigMap", "s", "old"),
		object("v1", "PersistentVolumeClaim", "s", "data"),
	}
	next := []manifest.Object{object("apps/v1", "Deployment", "s", "web")}
	prune, kept := gone(prev, next)
	var got []string
	for _, r := range prune {
		got = append(got, r.ID())
	}
	if diff := cmp.Diff([]string{"ConfigMap s/old"}, got); diff != "" {
		t.Errorf("prune set (-want +got):\n%s", diff)
	}
	if len(kept) != 1 || kept[0].ID != "PersistentVolumeClaim s/data" || kept[0].Action != apply.Skipped {
		t.Errorf("kept = %+v, want the PersistentVolumeClaim skipped", kept)
	}
}

func TestScratchName(t *testing.T) {
	for _, app := range []string{"shop", strings.Repeat("a", 63)} {
		n := scratchName(app)
		if len(n) > 63 || !strings.HasPrefix(n, "berth-rehearse-") {
			t.Errorf("scratchName(%q) = %q (%d characters)", app, n, len(n))
		}
	}
}
