package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Ref identifies a live object.
type Ref struct {
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
}

// ID renders the reference like manifest.ObjectID.
func (r Ref) ID() string {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(r.GVK)
	u.SetNamespace(r.Namespace)
	u.SetName(r.Name)
	return idOf(u)
}

// PruneOptions says which objects may be deleted.
type PruneOptions struct {
	// OwnerLabels must all be present with these values on an object for it
	// to be deleted: berth never deletes what it does not own.
	OwnerLabels map[string]string
	// PruneAnnotation is the per-object opt-in ("true") for
	// PersistentVolumeClaims, PersistentVolumes, Namespaces,
	// CustomResourceDefinitions and StatefulSets whose claims are deleted
	// with them, and opt-out ("false") for others.
	PruneAnnotation string
	// KeepNamespace, when set, is asked about a Namespace opted in to
	// pruning that holds no PersistentVolumeClaim: a reason keeps it (for
	// the agent: another Application deploys into it).
	KeepNamespace func(ctx context.Context, name string) (string, error)
	// DryRun deletes nothing: the change set says what would be deleted
	// (Deleted) and what kept (Skipped, with the reason).
	DryRun bool
}

// Prune deletes refs (objects gone from Git), in Helm's uninstall order by
// kind (workloads before the ServiceAccounts and ConfigMaps they use).
// PersistentVolumeClaims, PersistentVolumes, Namespaces,
// CustomResourceDefinitions and StatefulSets whose
// persistentVolumeClaimRetentionPolicy deletes their claims with them are
// kept unless annotated PruneAnnotation:
// "true", and a Namespace also while it holds a PersistentVolumeClaim that
// is not; any object annotated "false" is kept; objects not carrying
// OwnerLabels are kept.
func (m *Manager) Prune(ctx context.Context, refs []Ref, opts PruneOptions) (ChangeSet, error) {
	var cs ChangeSet
	var problems []Problem
	for _, r := range InUninstallOrder(refs) {
		id := r.ID()
		// Recorded in a version no longer served, an object of a kind
		// still served is pruned through the kind's current version.
		ri, err := m.recorded(r)
		if errors.Is(err, errUnknownKind) {
			// Its kind is gone, and with it every object of the kind; or
			// its API (an aggregated one) is down, and discovery leaves
			// it out: then it is retried, not forgotten.
			if down := m.apiDown(ctx, r); down != nil {
				problems = append(problems, Problem{ID: id, Err: down})
				continue
			}
			cs.Entries = append(cs.Entries, Entry{ID: id, Action: Skipped, Reason: err.Error()})
			continue
		}
		if err != nil {
			// Discovery failed (an aggregated API down): retried, the
			// object kept in the inventory meanwhile.
			problems = append(problems, Problem{ID: id, Err: err})
			continue
		}
		live, err := ri.Get(ctx, r.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			problems = append(problems, Problem{ID: id, Err: describe(err)})
			continue
		}
		reason := keep(live, opts)
		if reason == "" && r.GVK.GroupKind() == (schema.GroupKind{Kind: "Namespace"}) {
			reason, err = m.keepNamespace(ctx, r.Name, opts)
			if err == nil && reason == "" && opts.KeepNamespace != nil {
				reason, err = opts.KeepNamespace(ctx, r.Name)
			}
			if err != nil {
				problems = append(problems, Problem{ID: id, Err: err})
				continue
			}
		}
		if reason != "" {
			cs.Entries = append(cs.Entries, Entry{ID: id, Action: Skipped, Reason: reason})
			continue
		}
		if opts.DryRun {
			cs.Entries = append(cs.Entries, Entry{ID: id, Action: Deleted})
			continue
		}
		policy := metav1.DeletePropagationBackground
		uid := live.GetUID()
		err = ri.Delete(ctx, r.Name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			problems = append(problems, Problem{ID: id, Err: describe(err)})
			continue
		}
		cs.Entries = append(cs.Entries, Entry{ID: id, Action: Deleted})
	}
	sortEntries(cs.Entries)
	if len(problems) > 0 {
		return cs, &WriteError{Problems: problems}
	}
	return cs, nil
}

// apiDown returns why the API serving r's group and version cannot be
// reached, when discovery left the kind out because its API is down (an
// aggregated API whose service does not answer: the API server says 503)
// rather than gone (404); nil when it is gone, or cannot be told.
func (m *Manager) apiDown(ctx context.Context, r Ref) error {
	// Any resource of the group and version will do: the aggregator
	// answers for the whole path.
	gvr, _ := meta.UnsafeGuessKindToResource(r.GVK)
	ri := m.dyn.Resource(gvr).Namespace(r.Namespace)
	if r.Namespace == "" {
		ri = m.dyn.Resource(gvr)
	}
	_, err := ri.Get(ctx, r.Name, metav1.GetOptions{})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err) {
		return nil
	}
	return fmt.Errorf("the API of %s (%s) is not served now, and may return: kept, and tried again (%w)", r.GVK.Kind, r.GVK.GroupVersion(), err)
}

// helmResourcePolicy is Helm's annotation; "keep" keeps an object through
// helm uninstall.
const helmResourcePolicy = "helm.sh/resource-policy"

// keep returns why live must not be pruned, or "".
func keep(live *unstructured.Unstructured, opts PruneOptions) string {
	labels := live.GetLabels()
	for k, v := range opts.OwnerLabels {
		if labels[k] != v {
			return fmt.Sprintf("not owned by this Application (label %s)", k)
		}
	}
	ann := live.GetAnnotations()[opts.PruneAnnotation]
	if ann == "false" {
		return opts.PruneAnnotation + `: "false"`
	}
	// What `helm uninstall` keeps, berth keeps too.
	if live.GetAnnotations()[helmResourcePolicy] == "keep" {
		return helmResourcePolicy + `: "keep"`
	}
	gk := live.GroupVersionKind().GroupKind()
	if ann == "true" {
		return ""
	}
	switch gk {
	case schema.GroupKind{Kind: "PersistentVolumeClaim"}, schema.GroupKind{Kind: "PersistentVolume"}, schema.GroupKind{Kind: "Namespace"}:
		return fmt.Sprintf("%s holds data; kept unless annotated %s: \"true\"", gk.Kind, opts.PruneAnnotation)
	case schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
		return fmt.Sprintf("deleting a CustomResourceDefinition deletes every resource of its kind, in every namespace; kept unless annotated %s: \"true\"", opts.PruneAnnotation)
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		// The StatefulSet controller makes such a set the owner of its
		// claims: the garbage collector deletes them with it.
		when, _, _ := unstructured.NestedString(live.Object, "spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted")
		claims, _, _ := unstructured.NestedSlice(live.Object, "spec", "volumeClaimTemplates")
		if when == "Delete" && len(claims) > 0 {
			return fmt.Sprintf("StatefulSet's persistentVolumeClaimRetentionPolicy.whenDeleted is Delete: deleting it deletes its PersistentVolumeClaims; kept unless annotated %s: \"true\"", opts.PruneAnnotation)
		}
	}
	return ""
}

// keepNamespace returns why Namespace name, opted in to pruning, must be
// kept all the same: deleting it would delete PersistentVolumeClaims in it
// that did not opt in themselves.
func (m *Manager) keepNamespace(ctx context.Context, name string, opts PruneOptions) (string, error) {
	pvc := &unstructured.Unstructured{}
	pvc.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "PersistentVolumeClaim"})
	pvc.SetNamespace(name)
	ri, _, err := m.resource(pvc)
	if err != nil {
		return "", err
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("listing the PersistentVolumeClaims of Namespace %s before deleting it: %w", name, describe(err))
	}
	var held []string
	for _, c := range list.Items {
		if c.GetAnnotations()[opts.PruneAnnotation] != "true" {
			held = append(held, c.GetName())
		}
	}
	if len(held) == 0 {
		return "", nil
	}
	sort.Strings(held)
	return fmt.Sprintf("Namespace holds PersistentVolumeClaims not annotated %s: \"true\" (%s); deleting it would delete them", opts.PruneAnnotation, strings.Join(held, ", ")), nil
}
