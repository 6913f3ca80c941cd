package apply

import (
	"context"
	"strings"

	"github.com/berth-dev/berth/internal/manifest"
)

// ObjectDiff is the difference between one live object and Git.
type ObjectDiff struct {
	ID     string
	Source manifest.Source
	Action Action
	// Diff is a unified diff; empty when unchanged.
	Diff string
}

// Diff dry-runs objs and returns, per object, what a sync would change.
func (m *Manager) Diff(ctx context.Context, objs []manifest.Object) ([]ObjectDiff, error) {
	plans, err := m.plan(ctx, objs, true)
	if err != nil {
		return nil, err
	}
	var out []ObjectDiff
	for _, p := range plans {
		d := ObjectDiff{ID: p.obj.ID(), Source: p.obj.Source, Action: p.action}
		if p.deferred {
			d.Diff = "+ (created after its CustomResourceDefinition or Namespace)\n"
		} else if p.action != Unchanged {
			d.Diff, err = UnifiedDiff(d.ID, p.live, p.result)
			if err != nil {
				return nil, err
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// Drifted returns the IDs of objects whose live state differs from objs or
// that are missing.
func (m *Manager) Drifted(ctx context.Context, objs []manifest.Object) ([]string, error) {
	plans, err := m.plan(ctx, objs, true)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range plans {
		if p.action != Unchanged {
			out = append(out, p.obj.ID())
		}
	}
	return out, nil
}

// FormatDiffs renders diffs for a terminal; unchanged objects are left out.
func FormatDiffs(ds []ObjectDiff) string {
	var b strings.Builder
	for _, d := range ds {
		if d.Action == Unchanged {
			continue
		}
		b.WriteString(d.Diff)
		if !strings.HasSuffix(d.Diff, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}
