package apply

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/berth-dev/berth/internal/manifest"
)

// Health is the aggregate kstatus of a set of objects.
type Health string

// Health values.
const (
	Healthy     Health = "Healthy"     // every object Current
	Progressing Health = "Progressing" // some object InProgress
	Degraded    Health = "Degraded"    // some object Failed (e.g. ProgressDeadlineExceeded) or missing
	Unknown     Health = "Unknown"
)

// ObjectHealth is one object's kstatus.
type ObjectHealth struct {
	ID      string
	Status  status.Status
	Message string
	// Completed: a Job with ttlSecondsAfterFinished (the cluster removes
	// it once finished) whose Complete condition is True; kstatus counts
	// a Job Current from its start.
	Completed bool
}

// Report is the health of a set of objects.
type Report struct {
	Health  Health
	Objects []ObjectHealth
}

// Failing returns the objects that are not Current, for messages.
func (r Report) Failing() []ObjectHealth {
	var out []ObjectHealth
	for _, o := range r.Objects {
		if o.Status != status.CurrentStatus {
			out = append(out, o)
		}
	}
	return out
}

// Excuse returns r with each missing object whose ID is in gone counted
// Current, with gone's text as its message: an object expected to go
// away (a finished Job its ttlSecondsAfterFinished removed).
func (r Report) Excuse(gone map[string]string) Report {
	if len(gone) == 0 {
		return r
	}
	out := Report{Health: Healthy}
	for _, o := range r.Objects {
		if why, ok := gone[o.ID]; ok && o.Status == status.NotFoundStatus {
			o.Status, o.Message = status.CurrentStatus, why
		}
		out.add(o)
	}
	return out
}

// Health reads every ref's live state and computes kstatus. A Deployment
// whose rollout exceeded its progress deadline is Failed (fail-fast), not
// in progress.
func (m *Manager) Health(ctx context.Context, refs []Ref) (Report, error) {
	return m.HealthSince(ctx, refs, time.Time{})
}

// HealthSince is Health, except that a rollout failure recorded before
// since (the last apply) is stale: a Deployment keeps its
// ProgressDeadlineExceeded condition until the rollout that follows the
// next apply completes, so that verdict counts as in progress.
func (m *Manager) HealthSince(ctx context.Context, refs []Ref, since time.Time) (Report, error) {
	rep := Report{Health: Healthy}
	for _, r := range refs {
		ri, err := m.recorded(r)
		if errors.Is(err, errUnknownKind) {
			// Its CRD was deleted (and its objects with it), or its API
			// server is unavailable: Unknown, which neither passes nor
			// fails a release, rather than an error that stops every
			// health check of the Application.
			rep.add(ObjectHealth{ID: r.ID(), Status: status.UnknownStatus, Message: "the cluster serves no resource for its kind: its CRD was deleted, or its API is unavailable"})
			continue
		}
		if err != nil {
			return rep, err
		}
		live, err := ri.Get(ctx, r.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			rep.add(ObjectHealth{ID: r.ID(), Status: status.NotFoundStatus, Message: "not found"})
		case err != nil:
			return rep, fmt.Errorf("reading %s: %w", r.ID(), describe(err))
		default:
			rep.add(objectHealth(r.ID(), live, since))
		}
	}
	return rep, nil
}

// HealthOf is HealthSince computed from objects already read (the results
// of an apply, see Entry.Live) instead of reading them again. ok is false
// when an object is missing (nil): the caller reads instead.
func HealthOf(objs []*unstructured.Unstructured, since time.Time) (rep Report, refs []Ref, ok bool) {
	rep = Report{Health: Healthy}
	for _, u := range objs {
		if u == nil {
			return Report{}, nil, false
		}
		ref := Ref{GVK: u.GroupVersionKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
		refs = append(refs, ref)
		rep.add(objectHealth(ref.ID(), u, since))
	}
	return rep, refs, true
}

// objectHealth is the kstatus of one live object, with the fail-fast and
// stale-deadline rules of HealthSince.
func objectHealth(id string, live *unstructured.Unstructured, since time.Time) ObjectHealth {
	oh := ObjectHealth{ID: id}
	res, err := status.Compute(live)
	if err != nil {
		oh.Status, oh.Message = status.UnknownStatus, err.Error()
	} else {
		oh.Status, oh.Message = res.Status, res.Message
	}
	if oh.Status == status.FailedStatus && !since.IsZero() && staleDeadline(live, since) {
		oh.Status, oh.Message = status.InProgressStatus, "rollout restarted by the last apply"
	}
	if ttl, found, _ := unstructured.NestedFieldNoCopy(live.Object, "spec", "ttlSecondsAfterFinished"); found && ttl != nil &&
		live.GroupVersionKind().GroupKind() == (schema.GroupKind{Group: "batch", Kind: "Job"}) {
		conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Complete" && m["status"] == "True" {
				oh.Completed = true
			}
		}
	}
	return oh
}

// add appends one object's health and folds it into the aggregate.
func (r *Report) add(oh ObjectHealth) {
	r.Objects = append(r.Objects, oh)
	switch oh.Status {
	case status.CurrentStatus:
	case status.FailedStatus, status.NotFoundStatus:
		r.Health = Degraded
	case status.InProgressStatus, status.TerminatingStatus:
		if r.Health == Healthy {
			r.Health = Progressing
		}
	default:
		if r.Health == Healthy {
			r.Health = Unknown
		}
	}
}

func idOf(u *unstructured.Unstructured) string { return manifest.ObjectID(u) }

// staleDeadline reports whether u's ProgressDeadlineExceeded condition was
// last updated before since.
func staleDeadline(u *unstructured.Unstructured, since time.Time) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != "Progressing" || m["reason"] != "ProgressDeadlineExceeded" {
			continue
		}
		ts, _ := m["lastUpdateTime"].(string)
		t, err := time.Parse(time.RFC3339, ts)
		// Condition times have one-second resolution, and a rollback is
		// applied in the very second its predecessor's deadline passed:
		// a verdict from that second or earlier predates the apply.
		return err == nil && !t.After(since.Truncate(time.Second))
	}
	return false
}
