package install

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
	if err != nil {
		return cs, err
	}
	// The tenant grants of an earlier install that this one no longer
	// makes (a namespace dropped from --tenant-namespaces, or the flag
	// dropped): left, they would keep granting what the operator took
	// away.
	if o.CRDsOnly {
		return cs, nil // no agent installed here: its grants are not this install's
	}
	gone, err := removeTenantGrants(ctx, dyn, boundNamespaces(o))
	for _, id := range gone {
		cs.Entries = append(cs.Entries, apply.Entry{ID: id, Action: apply.Deleted})
	}
	if apierrors.IsForbidden(err) {
		cs.Entries = append(cs.Entries, apply.Entry{ID: "rbac.authorization.k8s.io/RoleBinding berth-agent-tenant", Action: apply.Skipped,
			Reason: "may not list RoleBindings cluster-wide: the tenant grants of an earlier install were not looked for (" + err.Error() + ")"})
		err = nil
	}
	return cs, err
}

// tenantGrants are the install's per-namespace grants (--tenant-namespaces).
var (
	roleBindings = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}
	clusterRoles = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}
)

// removeTenantGrants deletes the berth-agent-tenant RoleBindings the
// install made outside keep, and, when keep is empty, its ClusterRole. It
// returns what it deleted (IDs).
func removeTenantGrants(ctx context.Context, dyn dynamic.Interface, keep []string) ([]string, error) {
	sel := metav1.ListOptions{LabelSelector: createdBy + "=berth-install"}
	list, err := dyn.Resource(roleBindings).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("listing the agent's tenant RoleBindings: %w", err)
	}
	// Labelled by the install, and named, bound and granting as it makes
	// them: nothing else is deleted.
	list.Items = slices.DeleteFunc(list.Items, func(rb unstructured.Unstructured) bool {
		name, _, _ := unstructured.NestedString(rb.Object, "roleRef", "name")
		return name != "berth-agent-tenant"
	})
	var gone []string
	for _, rb := range list.Items {
		if rb.GetName() != "berth-agent-tenant" || slices.Contains(keep, rb.GetNamespace()) {
			continue
		}
		if err := dyn.Resource(roleBindings).Namespace(rb.GetNamespace()).Delete(ctx, rb.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return gone, fmt.Errorf("deleting RoleBinding %s/%s: %w", rb.GetNamespace(), rb.GetName(), err)
		}
		gone = append(gone, "rbac.authorization.k8s.io/RoleBinding "+rb.GetNamespace()+"/"+rb.GetName())
	}
	if len(keep) > 0 {
		return gone, nil
	}
	cr, err := dyn.Resource(clusterRoles).Get(ctx, "berth-agent-tenant", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return gone, nil
	}
	if err != nil {
		return gone, fmt.Errorf("reading ClusterRole berth-agent-tenant: %w", err)
	}
	if cr.GetLabels()[createdBy] != "berth-install" {
		return gone, nil
	}
	if err := dyn.Resource(clusterRoles).Delete(ctx, "berth-agent-tenant", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return gone, fmt.Errorf("deleting ClusterRole berth-agent-tenant: %w", err)
	}
	return append(gone, "rbac.authorization.k8s.io/ClusterRole berth-agent-tenant"), nil
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
	// An install before the annotation created it when berth's field
	// manager, applying its pod security label, is the only one that
	// ever wrote it (the API server's status writes aside). An earlier
	// install also applied that label over a namespace someone else had
	// created, whose creator then shows as a manager too: that one stays
	// theirs.
	if ns.GetLabels()[berthv1.OwnerNameLabel] != "" {
		return true, nil
	}
	ours := false
	for _, mf := range ns.GetManagedFields() {
		switch {
		case mf.Subresource == "status":
		case mf.Manager != apply.FieldManager:
			return true, nil
		case mf.Operation == metav1.ManagedFieldsOperationApply && mf.FieldsV1 != nil &&
			strings.Contains(mf.FieldsV1.GetRawString(), `"f:pod-security.kubernetes.io/enforce"`):
			ours = true
		}
	}
	return !ours, nil
}
