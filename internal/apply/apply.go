package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/berth-dev/berth/internal/manifest"
)

// planned is one object with its dry-run outcome.
type planned struct {
	obj      manifest.Object
	action   Action
	deferred bool
	result   *unstructured.Unstructured // dry-run result
	live     *unstructured.Unstructured // nil when absent
	written  *unstructured.Unstructured // the real apply's result
}

// Validate dry-runs every object with strict field validation, without
// writing anything. Objects whose kind or namespace is created by the same
// revision are validated once those exist (see Apply); here they count as
// valid. It returns what Apply would do.
func (m *Manager) Validate(ctx context.Context, objs []manifest.Object) (ChangeSet, error) {
	plans, err := m.plan(ctx, objs, true)
	if err != nil {
		return ChangeSet{}, err
	}
	cs := changeSet(plans)
	for i := range cs.Entries {
		cs.Entries[i].Live = nil // nothing was applied
	}
	return cs, nil
}

// Apply validates the whole revision, then applies it in stages: CRDs and
// Namespaces first (waiting for CRDs to be Established), then everything
// else, each stage in Helm's install order by kind (see installRank).
// Unchanged objects are not written. If validation fails nothing is
// written and a *ValidationError is returned.
func (m *Manager) Apply(ctx context.Context, objs []manifest.Object) (ChangeSet, error) {
	plans, err := m.plan(ctx, objs, true)
	if err != nil {
		return ChangeSet{}, err
	}
	var stage1, stage2 []*planned
	for _, p := range plans {
		if isStage1(p.obj.Object) {
			stage1 = append(stage1, p)
		} else {
			stage2 = append(stage2, p)
		}
	}
	inInstallOrder(stage1)
	inInstallOrder(stage2)
	if err := m.write(ctx, stage1, nil); err != nil {
		return changeSet(plans), err
	}
	var crds []*unstructured.Unstructured
	// Custom resources of a CRD written in stage 1 were dry-run against
	// its old schema (or deferred): they are dry-run again below, and
	// their write stays strict.
	crdKinds := sets.New[schema.GroupKind]()
	for _, p := range stage1 {
		if u := p.obj.Object; u.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, u)
			if p.action != Unchanged {
				crdKinds.Insert(crdKind(u))
			}
		}
	}
	if err := m.waitEstablished(ctx, crds); err != nil {
		return changeSet(plans), err
	}
	// Validate what had to wait for stage 1, before writing any of stage 2:
	// objects of new kinds or in new namespaces, and custom resources of a
	// CRD stage 1 changed (their dry run saw its old schema).
	var deferred []manifest.Object
	for _, p := range stage2 {
		if p.deferred || crdKinds.Has(p.obj.Object.GroupVersionKind().GroupKind()) {
			deferred = append(deferred, p.obj)
		}
	}
	if len(deferred) > 0 {
		m.mapper.Reset()
		again, err := m.replan(ctx, deferred)
		if err != nil {
			if verr, ok := errors.AsType[*ValidationError](err); ok && writtenAny(stage1) {
				verr.AfterStage1 = true
			}
			return changeSet(plans), err
		}
		byID := map[string]*planned{}
		for _, p := range again {
			byID[p.obj.ID()] = p
		}
		// The new plans replace the old in place: the write below records
		// its results on them, and the change set is made of plans.
		for _, p := range stage2 {
			if q, ok := byID[p.obj.ID()]; ok {
				*p = *q
			}
		}
	}
	if err := m.write(ctx, stage2, crdKinds); err != nil {
		return changeSet(plans), err
	}
	return changeSet(plans), nil
}

// plan dry-runs every object. With allowDefer, objects that depend on a CRD
// or Namespace in the same revision are marked deferred instead of failing.
func (m *Manager) plan(ctx context.Context, objs []manifest.Object, allowDefer bool) ([]*planned, error) {
	newKinds := sets.New[schema.GroupKind]()
	newNamespaces := sets.New[string]()
	for _, o := range objs {
		u := o.Object
		switch {
		case u.GetKind() == "CustomResourceDefinition":
			newKinds.Insert(crdKind(u))
		case u.GetKind() == "Namespace" && u.GroupVersionKind().Group == "":
			newNamespaces.Insert(u.GetName())
		}
	}
	var plans []*planned
	var problems []Problem
	type crRefusal struct {
		p       *planned
		problem Problem
	}
	var refused []crRefusal
	for _, o := range objs {
		p := &planned{obj: o}
		plans = append(plans, p)
		u := o.Object
		ri, _, err := m.resource(u)
		if err != nil {
			if allowDefer && newKinds.Has(u.GroupVersionKind().GroupKind()) {
				p.deferred, p.action = true, Created
				continue
			}
			problems = append(problems, Problem{ID: o.ID(), Source: o.Source, Err: err})
			continue
		}
		res, err := m.patch(ctx, u, dryRun)
		if err != nil {
			if allowDefer && newNamespaces.Has(u.GetNamespace()) && apierrors.IsNotFound(err) {
				p.deferred, p.action = true, Created
				continue
			}
			// Kept for below: a refusal of a custom resource whose CRD the
			// revision changes gets a hint.
			if newKinds.Has(u.GroupVersionKind().GroupKind()) {
				refused = append(refused, crRefusal{p: p, problem: Problem{ID: o.ID(), Source: o.Source, Err: describe(err)}})
				continue
			}
			problems = append(problems, Problem{ID: o.ID(), Source: o.Source, Err: describe(err)})
			continue
		}
		p.result = res
		// A dry-run that would create the object returns it without a
		// resourceVersion (nothing was stored): no need to read it. An
		// existing object is read to tell a change from a no-op.
		var live *unstructured.Unstructured
		if res.GetResourceVersion() != "" {
			live, err = ri.Get(ctx, u.GetName(), metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				live = nil // deleted since the dry-run: the write creates it
			case err != nil:
				problems = append(problems, Problem{ID: o.ID(), Source: o.Source, Err: describe(err)})
				continue
			}
		}
		if live != nil && m.guard != nil {
			if err := m.guard(ctx, live); err != nil {
				problems = append(problems, Problem{ID: o.ID(), Source: o.Source, Err: err})
				continue
			}
		}
		p.live = live
		switch {
		case live == nil:
			p.action = Created
		case Equal(live, res):
			p.action = Unchanged
		default:
			p.action = Configured
		}
	}
	// Every object is dry-run against the cluster as it is, CRDs included:
	// a custom resource that needs the revision's own change to its CRD
	// (a field it adds) is refused, like the rest of the revision. Say why.
	changed := sets.New[schema.GroupKind]()
	for _, p := range plans {
		if u := p.obj.Object; u.GetKind() == "CustomResourceDefinition" && p.action == Configured {
			changed.Insert(crdKind(u))
		}
	}
	for _, r := range refused {
		err := r.problem.Err
		if gk := r.p.obj.Object.GroupVersionKind().GroupKind(); changed.Has(gk) && !apierrors.IsForbidden(err) && !apierrors.IsNotFound(err) {
			r.problem.Err = fmt.Errorf("%w (checked against the %s CRD in the cluster: the revision changes it too, and nothing is written before every object passes; commit the CRD change on its own first)", r.problem.Err, gk)
		}
		problems = append(problems, r.problem)
	}
	if len(problems) > 0 {
		return plans, &ValidationError{Problems: problems}
	}
	return plans, nil
}

// writtenAny reports whether write wrote any of plans.
func writtenAny(plans []*planned) bool {
	for _, p := range plans {
		if p.written != nil {
			return true
		}
	}
	return false
}

// crdKind is the kind CustomResourceDefinition u defines.
func crdKind(u *unstructured.Unstructured) schema.GroupKind {
	group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(u.Object, "spec", "names", "kind")
	return schema.GroupKind{Group: group, Kind: kind}
}

// replanWait bounds how long replan waits for the API server to serve a
// CRD's new schema: an update keeps the CRD Established, so nothing says
// when its custom resources are validated against the new schema.
const replanWait = 5 * time.Second

// replan dry-runs objects deferred until stage 1 was written. A refusal is
// asked again for up to replanWait, in case it came from a CRD's old
// schema.
func (m *Manager) replan(ctx context.Context, objs []manifest.Object) ([]*planned, error) {
	deadline := time.Now().Add(replanWait)
	for {
		plans, err := m.plan(ctx, objs, false)
		var verr *ValidationError
		if err == nil || !errors.As(err, &verr) || time.Now().After(deadline) {
			return plans, err
		}
		select {
		case <-ctx.Done():
			return plans, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// write applies plans. Each was dry-run strictly with the same bytes, so
// the write skips strict field validation, except for objects of strict
// kinds (a CRD changed since their dry run).
func (m *Manager) write(ctx context.Context, plans []*planned, strict sets.Set[schema.GroupKind]) error {
	var problems []Problem
	for _, p := range plans {
		if p.action == Unchanged {
			continue
		}
		mode := writeLax
		if strict.Has(p.obj.Object.GroupVersionKind().GroupKind()) {
			mode = writeStrict
		}
		res, err := m.patch(ctx, p.obj.Object, mode)
		if err != nil {
			problems = append(problems, Problem{ID: p.obj.ID(), Source: p.obj.Source, Err: describe(err)})
			continue
		}
		p.written = res
	}
	if len(problems) > 0 {
		return &WriteError{Problems: problems}
	}
	return nil
}

// WriteError lists objects whose real apply failed after validation passed
// (a race with another writer, a webhook, a quota).
type WriteError struct {
	Problems []Problem
}

func (e *WriteError) Error() string {
	msg := fmt.Sprintf("apply failed for %d object(s)", len(e.Problems))
	for i, p := range e.Problems {
		if i == 10 {
			break
		}
		msg += fmt.Sprintf("; %s: %s: %v", p.Source, p.ID, p.Err)
	}
	return msg
}

// patchMode is how patch sends an apply.
type patchMode int

const (
	// dryRun: a server-side dry run, rejecting unknown and duplicate fields.
	dryRun patchMode = iota
	// writeLax: a write of bytes that passed a dry run.
	writeLax
	// writeStrict: a write validated as strictly as a dry run.
	writeStrict
)

func (m *Manager) patch(ctx context.Context, u *unstructured.Unstructured, mode patchMode) (*unstructured.Unstructured, error) {
	ri, _, err := m.resource(u)
	if err != nil {
		return nil, err
	}
	obj := u.DeepCopy()
	unstructured.RemoveNestedField(obj.Object, "status")
	obj.SetManagedFields(nil)
	obj.SetResourceVersion("")
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	// The dry run rejects unknown and duplicate fields. The write that
	// follows it sends the same bytes (plan, then write, in one Apply), so
	// it skips that check: strict validation parses the YAML body a second
	// time on the API server.
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptr(true), FieldValidation: "Strict"}
	switch mode {
	case dryRun:
		opts.DryRun = []string{metav1.DryRunAll}
	case writeLax:
		opts.FieldValidation = "Ignore"
	case writeStrict:
		// strict, as set above
	}
	return ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, opts)
}

// establishTimeout bounds the wait for a revision's CRDs to be established.
var establishTimeout = 30 * time.Second

func (m *Manager) waitEstablished(ctx context.Context, crds []*unstructured.Unstructured) error {
	if len(crds) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, establishTimeout)
	defer cancel()
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, c := range crds {
		for {
			live, err := m.dyn.Resource(gvr).Get(ctx, c.GetName(), metav1.GetOptions{})
			if err == nil && established(live) {
				break
			}
			select {
			case <-ctx.Done():
				// Say what stands in the way: the read's error, or the
				// conditions that are not True (NamesAccepted False: its
				// names are taken by another CRD).
				why := "its Established condition is not True"
				if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					why = describe(err).Error()
				} else if w := notTrue(live); w != "" {
					why = w
				}
				return fmt.Errorf("CustomResourceDefinition %s not established: %s: %w", c.GetName(), why, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	m.mapper.Reset()
	return nil
}

// notTrue lists a CRD's conditions that are not True, with their messages.
func notTrue(u *unstructured.Unstructured) string {
	if u == nil {
		return ""
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	var parts []string
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["status"] != "True" {
			parts = append(parts, fmt.Sprintf("%v %v: %v", m["type"], m["status"], m["message"]))
		}
	}
	return strings.Join(parts, "; ")
}

func established(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func changeSet(plans []*planned) ChangeSet {
	var cs ChangeSet
	for _, p := range plans {
		e := Entry{ID: p.obj.ID(), Source: p.obj.Source, Action: p.action, Live: p.written}
		if p.action == Unchanged {
			e.Live = p.result
		}
		cs.Entries = append(cs.Entries, e)
	}
	sortEntries(cs.Entries)
	return cs
}

// describe turns API errors into messages a user can act on.
func describe(err error) error {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		s := se.Status()
		if s.Reason == metav1.StatusReasonForbidden {
			if isQuota(err) {
				return fmt.Errorf("quota exceeded: %w", err)
			}
			return fmt.Errorf("permission denied: %w", err)
		}
	}
	return err
}

// isForbidden reports whether err is a denial of the account's rights:
// a refusal by a ResourceQuota is a 403 too, but no permission fixes it.
func isForbidden(err error) bool { return apierrors.IsForbidden(err) && !isQuota(err) }

// isQuota reports whether err is a ResourceQuota's refusal.
func isQuota(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota")
}

func ptr[T any](v T) *T { return &v }
