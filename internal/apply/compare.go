package apply

import (
	"bytes"
	"fmt"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// normalize strips fields that change on every write and say nothing about
// the desired state.
func normalize(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	for _, f := range [][]string{
		{"metadata", "managedFields"}, {"metadata", "resourceVersion"}, {"metadata", "generation"},
		{"metadata", "creationTimestamp"}, {"metadata", "uid"}, {"status"},
	} {
		unstructured.RemoveNestedField(c.Object, f...)
	}
	return c.Object
}

// Equal reports whether live and desired agree once server-managed fields
// are ignored.
func Equal(live, desired *unstructured.Unstructured) bool {
	return equality.Semantic.DeepEqual(normalize(live), normalize(desired))
}

// UnifiedDiff renders a unified diff between live (nil when absent) and
// desired, labelled with id.
func UnifiedDiff(id string, live, desired *unstructured.Unstructured) (string, error) {
	var a, b []byte
	var err error
	var la, da map[string]any
	if live != nil {
		la = normalize(live)
	}
	if desired != nil {
		da = normalize(desired)
	}
	if isSecret(live) || isSecret(desired) {
		maskSecret(la, da)
	}
	if la != nil {
		if a, err = yaml.Marshal(la); err != nil {
			return "", fmt.Errorf("encoding live %s: %w", id, err)
		}
	}
	if da != nil {
		if b, err = yaml.Marshal(da); err != nil {
			return "", fmt.Errorf("encoding desired %s: %w", id, err)
		}
	}
	if bytes.Equal(a, b) {
		return "", nil
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(a)), B: difflib.SplitLines(string(b)),
		FromFile: "live/" + id, ToFile: "git/" + id, Context: 3,
	})
}

func isSecret(u *unstructured.Unstructured) bool {
	return u != nil && u.GetAPIVersion() == "v1" && u.GetKind() == "Secret"
}

// lastApplied is kubectl's annotation, which holds a Secret's data too.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// maskSecret replaces the values of a Secret's data and stringData in its
// live and desired forms (either may be nil), as kubectl diff does: "***"
// where both sides agree or only one has the key, "*** (before)" and
// "*** (after)" where they differ. A diff says which keys change, never
// what they hold.
func maskSecret(live, desired map[string]any) {
	for _, field := range []string{"data", "stringData"} {
		lv, _ := live[field].(map[string]any)
		dv, _ := desired[field].(map[string]any)
		for k, l := range lv {
			d, both := dv[k]
			switch {
			case !both:
				lv[k] = "***"
			case fmt.Sprint(l) == fmt.Sprint(d):
				lv[k], dv[k] = "***", "***"
			default:
				lv[k], dv[k] = "*** (before)", "*** (after)"
			}
		}
		for k := range dv {
			if _, both := lv[k]; !both {
				dv[k] = "***"
			}
		}
	}
	for _, obj := range []map[string]any{live, desired} {
		md, _ := obj["metadata"].(map[string]any)
		if ann, ok := md["annotations"].(map[string]any); ok {
			if _, ok := ann[lastApplied]; ok {
				ann[lastApplied] = "***"
			}
		}
	}
}
