package install

import (
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/berth-dev/berth/internal/manifest"
)

// AgentRules returns what `berth install` grants the agent's
// ServiceAccount in namespace: the rules of its ClusterRole and of its Role
// there (leader election). `berth audit` compares an agent's bindings
// with them.
func AgentRules(namespace string) (cluster, namespaced []rbacv1.PolicyRule, err error) {
	o := DefaultOptions()
	o.Namespace = namespace
	data, err := Manifests(o)
	if err != nil {
		return nil, nil, err
	}
	objs, err := manifest.Parse("berth-install.yaml", data)
	if err != nil {
		return nil, nil, err
	}
	for _, obj := range objs {
		u := obj.Object
		switch u.GetKind() {
		case "ClusterRole", "Role":
			var r rbacv1.ClusterRole // a Role has the same rules field
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r); err != nil {
				return nil, nil, fmt.Errorf("reading %s %s: %w", u.GetKind(), u.GetName(), err)
			}
			if u.GetKind() == "ClusterRole" {
				cluster = append(cluster, r.Rules...)
			} else {
				namespaced = append(namespaced, r.Rules...)
			}
		}
	}
	if len(cluster) == 0 {
		return nil, nil, fmt.Errorf("the install manifests hold no ClusterRole")
	}
	return cluster, namespaced, nil
}
