package install

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/manifest"
)

// A cluster that does not serve MutatingAdmissionPolicy (before 1.36) gets
// the rest of the install, the policy listed as skipped with the reason;
// one that serves it gets everything. Any other unknown kind stays in, for
// the apply's validation to refuse with the whole install. (The mapper is
// client-go's static one: which kinds a cluster serves is all this reads.)
func TestServedOnlySkipsTheFinalizerPolicyWhereItIsNotServed(t *testing.T) {
	data, err := Manifests(Options{APIOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifest.Parse("api.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	mapper := func(kinds ...string) meta.RESTMapper {
		m := meta.NewDefaultRESTMapper(nil)
		for _, k := range kinds {
			m.Add(schema.GroupVersionKind{Group: "admissionregistration.k8s.io", Version: "v1", Kind: k}, meta.RESTScopeRoot)
		}
		return m
	}

	keep, skipped, err := servedOnly(mapper(), objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(keep) != len(objs)-2 || len(skipped) != 2 {
		t.Fatalf("old cluster: kept %d of %d, skipped %d; want the two policy objects skipped", len(keep), len(objs), len(skipped))
	}
	for _, e := range skipped {
		if e.Action != apply.Skipped || !strings.Contains(e.ID, "MutatingAdmissionPolicy") || !strings.Contains(e.Reason, "Kubernetes 1.36") || !strings.Contains(e.Reason, "berth.dev/cleanup") {
			t.Errorf("skipped entry %+v", e)
		}
	}
	for _, o := range keep {
		if o.Object.GetKind() != "CustomResourceDefinition" {
			t.Errorf("old cluster: kept %s", o.ID())
		}
	}

	keep, skipped, err = servedOnly(mapper("MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"), objs)
	if err != nil || len(keep) != len(objs) || len(skipped) != 0 {
		t.Errorf("new cluster: kept %d of %d, skipped %v, %v; want everything", len(keep), len(objs), skipped, err)
	}
}
