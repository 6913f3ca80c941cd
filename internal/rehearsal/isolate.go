package rehearsal

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/manifest"
)

// set is one release as the drill applies it.
type set struct {
	// isolated are the release's objects of the destination namespace,
	// rewritten into the scratch namespace.
	isolated []manifest.Object
	// checkOnly are cluster-scoped objects and objects of other
	// namespaces, as recorded: they are only dry-run.
	checkOnly []manifest.Object
}

// isolate splits a release's objects. Objects in the destination namespace
// target (or in none, for namespaced kinds) are copied into scratch: their
// namespace, RoleBinding subjects of target, and berth's ownership labels
// are rewritten, the latter to DrillLabel so the agent does not take the
// copies for its own (its watch selects on the ownership labels). Other
// objects are left as they are, for a dry-run.
func isolate(objs []manifest.Object, target, scratch string, namespaced func(schema.GroupVersionKind) bool) set {
	var s set
	for _, o := range objs {
		u := o.Object
		ns := u.GetNamespace()
		if ns != target && (ns != "" || !namespaced(u.GroupVersionKind())) {
			s.checkOnly = append(s.checkOnly, o)
			continue
		}
		c := u.DeepCopy()
		c.SetNamespace(scratch)
		labels := c.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		delete(labels, berthv1.OwnerNameLabel)
		delete(labels, berthv1.OwnerNamespaceLabel)
		labels[DrillLabel] = scratch
		c.SetLabels(labels)
		if gk := c.GroupVersionKind().GroupKind(); gk == (schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}) {
			rewriteSubjects(c, target, scratch)
		}
		s.isolated = append(s.isolated, manifest.Object{Object: c, Source: o.Source})
	}
	return s
}

// rewriteSubjects points a RoleBinding's subjects in target at scratch
// (the service accounts the release creates live there now).
func rewriteSubjects(u *unstructured.Unstructured, target, scratch string) {
	subjects, found, err := unstructured.NestedSlice(u.Object, "subjects")
	if !found || err != nil {
		return
	}
	for _, s := range subjects {
		if m, ok := s.(map[string]any); ok && m["namespace"] == target {
			m["namespace"] = scratch
		}
	}
	_ = unstructured.SetNestedSlice(u.Object, subjects, "subjects")
}

// refs returns the references of objs.
func refs(objs []manifest.Object) []apply.Ref {
	out := make([]apply.Ref, 0, len(objs))
	for _, o := range objs {
		out = append(out, apply.Ref{GVK: o.Object.GroupVersionKind(), Namespace: o.Object.GetNamespace(), Name: o.Object.GetName()})
	}
	return out
}

// gone returns what prev holds and next does not: the prune set, except
// PersistentVolumeClaims, which a drill never prunes (returned as skipped
// entries). apply.Prune protects them as well, unless annotated
// berth.dev/prune: "true"; a drill keeps even those.
func gone(prev, next []manifest.Object) ([]apply.Ref, []apply.Entry) {
	keep := map[string]bool{}
	for _, o := range next {
		keep[o.ID()] = true
	}
	var prune []apply.Ref
	var kept []apply.Entry
	for _, r := range refs(prev) {
		switch {
		case keep[r.ID()]:
		case r.GVK.GroupKind() == schema.GroupKind{Kind: "PersistentVolumeClaim"}:
			kept = append(kept, apply.Entry{ID: r.ID(), Action: apply.Skipped, Reason: "PersistentVolumeClaim holds data; never pruned"})
		default:
			prune = append(prune, r)
		}
	}
	return prune, kept
}

// ids returns the IDs of objs.
func ids(objs []manifest.Object) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.ID())
	}
	return out
}
