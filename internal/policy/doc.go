// Package policy is berth's gate engine: the checks that stand between a
// rendered revision and the cluster. The same code runs in CI (`berth check`)
// and in the agent before every apply, so a revision that passes one passes
// the other.
//
// A gate is a Rule with a stable ID (see Rules and docs/policy.md), a
// Severity and a Mode per rule: enforce (the revision is rejected), warn
// (reported, not blocking) or off. The modes come from a Config: the
// repository's .berth/policy.yaml (LoadFile) merged with the Application's
// own settings (Merge). Exceptions name a rule, an object, a reason and an
// expiry date; an expired exception stops working and is reported.
//
// The agent's call sequence for one revision is:
//
//	cfg := policy.Merge(repoCfg, appCfg)               // both may be zero
//	res, err := resolver.Resolve(ctx, objs, previousPins)
//	// err matching policy.ErrRegistryUnreachable: hold the sync when
//	// cfg.DigestsRequired(), otherwise continue with the tags
//	report, err := policy.Evaluate(ctx, res.Objects, cfg, policy.WithResolution(res))
//	if report.Blocked() { /* Stalled: report.Summary(); write nothing */ }
//	// report.Warnings() go to conditions, events and metrics;
//	// res.Pins go into the release record (tag and digest per image).
//
// Evaluate is pure: no I/O, no clock except the one in EvaluateOptions (for
// exception expiry), and it never modifies its input. Resolve is the only
// part that talks to a registry (go-containerregistry).
package policy
