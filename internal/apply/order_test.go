package apply_test

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/berth-dev/berth/internal/apply"
)

func TestUninstallOrder(t *testing.T) {
	ref := func(group, kind, name string) apply.Ref {
		return apply.Ref{GVK: schema.GroupVersionKind{Group: group, Version: "v1", Kind: kind}, Namespace: "ns", Name: name}
	}
	in := []apply.Ref{
		ref("", "Namespace", "ns"),
		ref("", "ServiceAccount", "web"),
		ref("example.test", "Widget", "b"),
		ref("", "ConfigMap", "web"),
		ref("apps", "Deployment", "web"),
		ref("example.test", "Gadget", "a"),
		ref("apps", "Deployment", "api"),
		ref("networking.k8s.io", "Ingress", "web"),
		ref("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "web"),
	}
	orig := slices.Clone(in)
	var got []string
	for _, r := range apply.InUninstallOrder(in) {
		got = append(got, r.GVK.Kind+"/"+r.Name)
	}
	// Webhooks first (they could refuse the rest), then custom resources
	// by kind name (while the operator that finalizes them still runs),
	// workloads before what they use, the Namespace last, one kind's
	// objects in the order given.
	want := []string{"ValidatingWebhookConfiguration/web", "Gadget/a", "Widget/b", "Ingress/web", "Deployment/web", "Deployment/api",
		"ConfigMap/web", "ServiceAccount/web", "Namespace/ns"}
	if !slices.Equal(got, want) {
		t.Fatalf("uninstall order\n got %v\nwant %v", got, want)
	}
	if !slices.Equal(in, orig) {
		t.Fatal("InUninstallOrder changed its argument")
	}
}
