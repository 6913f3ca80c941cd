package apply

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/berth-dev/berth/internal/manifest"
)

// FieldManager is berth's server-side apply field manager. It never changes:
// changing it would orphan every field berth ever applied.
const FieldManager = "berth"

// Action is what happened (or would happen) to one object.
type Action string

// Actions.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Deleted    Action = "deleted"
	Skipped    Action = "skipped"
)

// Entry is one object's outcome.
type Entry struct {
	ID     string
	Source manifest.Source
	Action Action
	// Reason explains a skip.
	Reason string
	// Live is the object as the API server returned it from Apply (or,
	// unchanged, from the dry-run just before): its state, status
	// included, right after the sync. Nil when Apply did not write or
	// check it (Validate, a failed write, a prune).
	Live *unstructured.Unstructured
}

// ChangeSet lists the outcome of an apply, dry-run or prune.
type ChangeSet struct {
	Entries []Entry
}

// Count returns how many entries have action a.
func (c ChangeSet) Count(a Action) int {
	n := 0
	for _, e := range c.Entries {
		if e.Action == a {
			n++
		}
	}
	return n
}

// Changed reports whether anything was created, configured or deleted.
func (c ChangeSet) Changed() bool {
	return c.Count(Created)+c.Count(Configured)+c.Count(Deleted) > 0
}

// Summary renders counts, e.g. "2 created, 1 configured, 5 unchanged".
func (c ChangeSet) Summary() string {
	var parts []string
	for _, a := range []Action{Created, Configured, Unchanged, Deleted, Skipped} {
		if n := c.Count(a); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, a))
		}
	}
	if len(parts) == 0 {
		return "no objects"
	}
	return strings.Join(parts, ", ")
}

// Problem is one object's validation or apply failure.
type Problem struct {
	ID     string
	Source manifest.Source
	Err    error
}

// ValidationError lists every object of a revision that failed validation.
// Nothing was written when it is returned from Validate or Apply, unless
// AfterStage1: objects that could only be checked once the revision's
// CRDs and Namespaces were written failed, after those were written.
type ValidationError struct {
	Problems    []Problem
	AfterStage1 bool
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if e.AfterStage1 {
		fmt.Fprintf(&b, "revision rejected after its CRDs and Namespaces were applied, nothing else: %d invalid object(s)", len(e.Problems))
	} else {
		fmt.Fprintf(&b, "revision rejected, nothing applied: %d invalid object(s)", len(e.Problems))
	}
	for i, p := range e.Problems {
		if i == 10 {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-10)
			break
		}
		fmt.Fprintf(&b, "; %s: %s: %v", p.Source, p.ID, p.Err)
	}
	return b.String()
}

// Forbidden reports whether any problem is an RBAC denial.
func (e *ValidationError) Forbidden() bool {
	for _, p := range e.Problems {
		if isForbidden(p.Err) {
			return true
		}
	}
	return false
}

// Transient reports whether every problem is one a retry may get past
// (see Transient): the revision was not judged, so it is not rejected.
func (e *ValidationError) Transient() bool {
	for _, p := range e.Problems {
		if !Transient(p.Err) {
			return false
		}
	}
	return len(e.Problems) > 0
}

// Transient reports whether err says nothing about the objects sent,
// only about the API server at that moment: unreachable, overloaded,
// timing out, or failing inside (an admission or conversion webhook it
// cannot call, etcd). A retry may pass. A 500 for an object that does not
// fit its schema is not: the API server answers a server-side apply of an
// undeclared field ("failed to create typed patch object") with one.
func Transient(err error) bool {
	var netErr net.Error
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		(apierrors.IsInternalError(err) && !schemaError(err)) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.As(err, &netErr)
}

// schemaError reports whether err is the 500 of a server-side apply
// whose object does not fit its type's schema.
func schemaError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to create typed patch object") || strings.Contains(msg, "failed to create typed live object")
}

// Manager applies objects through one (impersonated) client.
type Manager struct {
	dyn    dynamic.Interface
	mapper meta.ResettableRESTMapper
	guard  Guard
}

// Guard is asked about every object a revision would change that exists
// already, with the object as it lives; an error refuses the revision like
// a failed dry run (nothing written).
type Guard func(ctx context.Context, live *unstructured.Unstructured) error

// WithGuard returns a Manager sharing m's client that asks g before
// writing over an existing object.
func (m *Manager) WithGuard(g Guard) *Manager {
	c := *m
	c.guard = g
	return &c
}

// NewManager returns a Manager using dyn for writes and mapper to map kinds
// to resources.
func NewManager(dyn dynamic.Interface, mapper meta.ResettableRESTMapper) *Manager {
	return &Manager{dyn: dyn, mapper: mapper}
}

// errUnknownKind: the cluster serves no resource for a kind.
var errUnknownKind = errors.New("unknown kind")

// resource maps u to its dynamic resource interface; namespaced reports
// whether the kind is namespaced.
func (m *Manager) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, bool, error) {
	gvk := u.GroupVersionKind()
	mapping, err := m.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		m.mapper.Reset()
		mapping, err = m.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, false, fmt.Errorf("%w %s (no such resource in the cluster)", errUnknownKind, gvk)
		}
		return nil, false, fmt.Errorf("mapping %s: %w", gvk, err)
	}
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		return m.dyn.Resource(mapping.Resource).Namespace(u.GetNamespace()), true, nil
	}
	return m.dyn.Resource(mapping.Resource), false, nil
}

// recorded returns the resource of an object recorded as r. The recorded
// version may no longer be served while the kind still is (a CRD that
// dropped a version): the kind's preferred version is used then. An
// unserved kind is errUnknownKind.
func (m *Manager) recorded(r Ref) (dynamic.ResourceInterface, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(r.GVK)
	u.SetNamespace(r.Namespace)
	u.SetName(r.Name)
	ri, _, err := m.resource(u)
	if !errors.Is(err, errUnknownKind) {
		return ri, err
	}
	mapping, merr := m.mapper.RESTMapping(r.GVK.GroupKind())
	if merr != nil {
		return nil, err
	}
	res := m.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		return res.Namespace(r.Namespace), nil
	}
	return res, nil
}

// isStage1 reports whether u must exist before other objects: CRDs and
// Namespaces.
func isStage1(u *unstructured.Unstructured) bool {
	gk := u.GroupVersionKind().GroupKind()
	return gk == schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"} ||
		gk == schema.GroupKind{Kind: "Namespace"}
}

func sortEntries(es []Entry) {
	sort.SliceStable(es, func(i, j int) bool { return es[i].ID < es[j].ID })
}
