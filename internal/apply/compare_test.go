package apply_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/berth-dev/berth/internal/apply"
)

func secret(data map[string]any, annotations map[string]any) *unstructured.Unstructured {
	meta := map[string]any{"name": "db", "namespace": "ns"}
	if annotations != nil {
		meta["annotations"] = annotations
	}
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": data}}
}

// A diff of a Secret says which keys change, never what they hold.
func TestUnifiedDiffMasksSecrets(t *testing.T) {
	live := secret(map[string]any{"password": "b2xkLXBhc3N3b3Jk", "user": "YWRtaW4=", "gone": "Z29uZS12YWx1ZQ=="},
		map[string]any{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"b2xkLXBhc3N3b3Jk"}}`})
	desired := secret(map[string]any{"password": "bmV3LXBhc3N3b3Jk", "user": "YWRtaW4=", "added": "YWRkZWQtdmFsdWU="}, nil)
	d, err := apply.UnifiedDiff("Secret ns/db", live, desired)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"b2xkLXBhc3N3b3Jk", "bmV3LXBhc3N3b3Jk", "YWRtaW4=", "Z29uZS12YWx1ZQ==", "YWRkZWQtdmFsdWU="} {
		if strings.Contains(d, v) {
			t.Errorf("the diff shows a value (%s):\n%s", v, d)
		}
	}
	for _, want := range []string{"-  password: '*** (before)'", "+  password: '*** (after)'", "-  gone: '***'", "+  added: '***'"} {
		if !strings.Contains(d, want) {
			t.Errorf("the diff lacks %q:\n%s", want, d)
		}
	}
	if strings.Contains(d, "user:") && (strings.Contains(d, "-  user") || strings.Contains(d, "+  user")) {
		t.Errorf("an unchanged key shows as changed:\n%s", d)
	}
	// The same Secret: no diff at all.
	if d, err := apply.UnifiedDiff("Secret ns/db", desired, desired.DeepCopy()); err != nil || d != "" {
		t.Errorf("diff of equal Secrets = %q, %v", d, err)
	}
	// A Secret created: its values masked too.
	if d, err := apply.UnifiedDiff("Secret ns/db", nil, desired); err != nil || strings.Contains(d, "bmV3LXBhc3N3b3Jk") {
		t.Errorf("diff of a new Secret = %q, %v", d, err)
	}
}
