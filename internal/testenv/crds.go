package testenv

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/config"
)

var crdOnce sync.Once

// InstallCRDs applies berth's CRDs to the sandbox once per test binary and
// waits until they are Established.
func InstallCRDs(t testing.TB, env *Env) {
	t.Helper()
	var err error
	crdOnce.Do(func() {
		dyn := dynamic.NewForConfigOrDie(env.Config)
		gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
		err = fs.WalkDir(config.CRDs, "crd", func(p string, d fs.DirEntry, werr error) error {
			if werr != nil || d.IsDir() {
				return werr
			}
			b, _ := config.CRDs.ReadFile(p)
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(b, &u.Object); err != nil {
				return err
			}
			data, _ := u.MarshalJSON()
			force := true
			if _, err := dyn.Resource(gvr).Patch(context.Background(), u.GetName(), types.ApplyPatchType, data,
				metav1.PatchOptions{FieldManager: "berth-test", Force: &force}); err != nil {
				return err
			}
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				live, err := dyn.Resource(gvr).Get(context.Background(), u.GetName(), metav1.GetOptions{})
				if err == nil {
					conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
					for _, c := range conds {
						if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
							return nil
						}
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			return errors.New("CRD " + u.GetName() + " not established")
		})
	})
	if err != nil {
		t.Fatalf("installing CRDs: %v", err)
	}
}
