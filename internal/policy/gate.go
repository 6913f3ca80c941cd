package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/internal/manifest"
)

// GateInput is one revision on its way to the cluster.
type GateInput struct {
	// Objects are the rendered objects, as in Git.
	Objects []manifest.Object
	// Config is the merged policy (Merge of the repository's file and the
	// Application's settings).
	Config Config
	// Resolver resolves tags to digests; nil skips resolution (berth check).
	Resolver *Resolver
	// PreviousTags is the tag→digest map of the last release (nil for none).
	PreviousTags map[string]string
	// CheckOnly are evaluated by every rule with Objects but neither
	// resolved nor returned: a chart's Helm hooks, which Helm creates
	// itself, from the chart, by tag.
	CheckOnly []manifest.Object
}

// GateResult is what the agent applies and records.
type GateResult struct {
	// Objects are the objects to apply: digest-pinned where resolved.
	Objects []manifest.Object
	// Report holds the violations; Report.Blocked() means reject the
	// revision (Stalled), Report.Warnings() go to conditions, events, metrics.
	Report *Report
	// Resolution holds the pins (tag and digest per image) for the release
	// record; nil without a Resolver.
	Resolution *Resolution
	// Held is non-nil when the sync must wait rather than apply or reject:
	// tags could not be resolved (registry unreachable, denied, missing)
	// while digests are required. It wraps the *ResolveError(s); errors.Is
	// with ErrRegistryUnreachable tells an outage from a bad reference.
	Held error
}

// ErrHeld marks GateResult.Held.
var ErrHeld = errors.New("sync held: image tags could not be resolved to digests, which this policy requires")

// Gate runs the whole gate for the agent: resolve tags (when a Resolver is
// given), evaluate the rendered objects with the resolution, and decide.
// It returns an error only for what retrying cannot change in the input
// (a malformed object, an invalid Config); registry trouble ends up in
// Held (digests required) or in image-digest-required warnings (not).
func Gate(ctx context.Context, in GateInput) (*GateResult, error) {
	out := &GateResult{Objects: in.Objects}
	if in.Resolver != nil {
		res, err := in.Resolver.Resolve(ctx, in.Objects, in.PreviousTags)
		if res == nil {
			return nil, err
		}
		out.Resolution, out.Objects = res, res.Objects
		if err != nil && in.Config.DigestsRequired() {
			out.Held = fmt.Errorf("%w: %w", ErrHeld, err)
		}
	}
	eval := in.Objects
	byTag := map[*manifest.Object]bool{}
	if len(in.CheckOnly) > 0 {
		eval = append(append([]manifest.Object(nil), in.Objects...), in.CheckOnly...)
		for i := len(in.Objects); i < len(eval); i++ {
			byTag[&eval[i]] = true
		}
	}
	rep, err := Evaluate(ctx, eval, in.Config, WithResolution(out.Resolution), func(o *evalOptions) { o.byTag = byTag })
	if err != nil {
		return nil, err
	}
	out.Report = rep
	return out, nil
}
