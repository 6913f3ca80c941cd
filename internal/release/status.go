package release

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// UpdateStatus applies mutate to rel's status and patches it.
func (s *Store) UpdateStatus(ctx context.Context, rel *berthv1.Release, mutate func(*berthv1.ReleaseStatus)) error {
	patch := client.MergeFrom(rel.DeepCopy())
	mutate(&rel.Status)
	if rel.Status.AppliedAt == nil && !rel.CreationTimestamp.IsZero() {
		applied := rel.CreationTimestamp
		rel.Status.AppliedAt = &applied
	}
	if err := s.Client.Status().Patch(ctx, rel, patch); err != nil {
		return fmt.Errorf("updating status of %s: %w", rel.Name, err)
	}
	return nil
}

// Crossed returns the releases a rollback from the newest release down to
// target passes over, newest first: every release numbered after target
// that is not itself a rollback.
func Crossed(rels []berthv1.Release, target int64) []*berthv1.Release {
	var out []*berthv1.Release
	for i := range rels {
		r := &rels[i]
		if r.Spec.Number > target && r.Spec.Trigger != berthv1.TriggerRollback {
			out = append(out, r)
		}
	}
	return out
}
