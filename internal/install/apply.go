package install

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/manifest"
)

// Apply installs (or upgrades) berth with cfg's identity, through the same
// staged server-side apply the agent uses.
func Apply(ctx context.Context, cfg *rest.Config, o Options) (apply.ChangeSet, error) {
	data, err := Manifests(o)
	if err != nil {
		return apply.ChangeSet{}, err
	}
	objs, err := manifest.Parse("berth-install.yaml", data)
	if err != nil {
		return apply.ChangeSet{}, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return apply.ChangeSet{}, fmt.Errorf("creating discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return apply.ChangeSet{}, fmt.Errorf("creating client: %w", err)
	}
	// A namespace that exists and that no berth install created is
	// someone else's: its labels (pod security) are left alone, and
	// Uninstall will not delete it.
	var kept []apply.Entry
	for i, obj := range objs {
		if obj.Object.GetKind() != "Namespace" {
			continue
		}
		theirs, err := foreignNamespace(ctx, dyn, obj.Object.GetName())
		if err != nil {
			return apply.ChangeSet{}, err
		}
		if theirs {
			kept = append(kept, apply.Entry{ID: obj.ID(), Action: apply.Skipped,
				Reason: "exists and was not created by berth install: left as it is (enforce the restricted pod security level there yourself); berth uninstall keeps it"})
			objs = append(objs[:i:i], objs[i+1:]...)
			break
		}
	}
	m := apply.NewManager(dyn, restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)))
	cs, err := m.Apply(ctx, objs)
	cs.Entries = append(kept, cs.Entries...)
	return cs, err
}

// createdBy is the annotation the install puts on the namespace it
// creates.
const createdBy = "berth.dev/created-by"

// foreignNamespace reports whether namespace name exists without the
// install's annotation.
func foreignNamespace(ctx context.Context, dyn dynamic.Interface, name string) (bool, error) {
	ns, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading namespace %s: %w", name, err)
	}
	if ns.GetAnnotations()[createdBy] == "berth-install" {
		return false, nil
	}
	// An install before the annotation: berth's field manager applied
	// the restricted pod security label on a namespace no Application
	// owns. It is the install's, and takes the annotation now.
	if ns.GetLabels()[berthv1.OwnerNameLabel] != "" {
		return true, nil
	}
	for _, mf := range ns.GetManagedFields() {
		if mf.Manager == apply.FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply && mf.FieldsV1 != nil &&
			strings.Contains(mf.FieldsV1.GetRawString(), `"f:pod-security.kubernetes.io/enforce"`) {
			return false, nil
		}
	}
	return true, nil
}
