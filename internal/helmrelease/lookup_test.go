package helmrelease

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/berth-dev/berth/internal/testenv"
)

// lookup answers as Helm's does, on a real API server: an object, a list,
// a cluster-scoped object, an empty map for what does not exist, and an
// error for a kind the cluster does not serve.
func TestLookup(t *testing.T) {
	env := testenv.Sandbox(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	lookup := Lookup(ctx, env.Config, restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)))

	got, err := lookup("v1", "ConfigMap", ns, "b")
	if err != nil || got["data"].(map[string]any)["k"] != "b" {
		t.Errorf("get = %v, %v", got, err)
	}
	got, err = lookup("v1", "ConfigMap", ns, "")
	if items, _ := got["items"].([]any); err != nil || len(items) < 2 {
		t.Errorf("list = %v, %v; want the two ConfigMaps", got, err)
	}
	got, err = lookup("v1", "Namespace", "", ns)
	if err != nil || got["metadata"].(map[string]any)["name"] != ns {
		t.Errorf("cluster-scoped get = %v, %v", got, err)
	}
	got, err = lookup("v1", "Namespace", "ignored", ns)
	if err != nil || got["metadata"].(map[string]any)["name"] != ns {
		t.Errorf("cluster-scoped get with a namespace = %v, %v", got, err)
	}
	for _, name := range []string{"missing", ""} {
		got, err = lookup("v1", "Secret", "no-such-namespace", name)
		if items, _ := got["items"].([]any); err != nil || (name != "" && len(got) != 0) || len(items) != 0 {
			t.Errorf("lookup of %q in a namespace that does not exist = %v, %v; want nothing", name, got, err)
		}
	}
	if _, err = lookup("example.test/v1", "Widget", ns, "w"); err == nil || !strings.Contains(err.Error(), "example.test/v1 Widget") {
		t.Errorf("unserved kind: err = %v, want it named", err)
	}
	if _, err = lookup("a/b/c", "Widget", ns, "w"); err == nil {
		t.Error("a malformed apiVersion was looked up")
	}
}
