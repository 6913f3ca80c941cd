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
	if live != nil {
		if a, err = yaml.Marshal(normalize(live)); err != nil {
			return "", fmt.Errorf("encoding live %s: %w", id, err)
		}
	}
	if desired != nil {
		if b, err = yaml.Marshal(normalize(desired)); err != nil {
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
