// Package policy is berth's gate engine: the checks that stand between a
// rendered revision and the cluster. The same code runs in CI (`berth check`)
// and in the agent before every apply, so a revision that passes one passes
// the other.
//
// A gate is a Rule with a stable ID (see Rules and docs/policy.md), a
// Severity and a Mode per rule: enforce (the revision is rejected), warn
// (reported, not blocking) or off. The modes come from a Config: the
// repository's .berth/policy.yaml (LoadFile, FindFile) merged with the
// Application's own settings (Merge; an Application stores the same JSON
// shape, which Parse reads). Exceptions name a rule, an object, a reason and
// an expiry date; an expired exception stops working and is reported in
// Report.Exceptions.
//
// # The agent
//
// Before every apply the agent calls Gate:
//
//	repoCfg, err := policy.LoadFile(snapshotRoot)        // zero Config if absent
//	appCfg, err := policy.Parse(appPolicyJSON)           // or the zero Config
//	resolver, err := policy.NewResolver(cfg.Images, pullSecretDockerConfigJSON...)
//	g, err := policy.Gate(ctx, policy.GateInput{
//		Objects: rendered, Config: policy.Merge(repoCfg, appCfg),
//		Resolver: resolver, PreviousTags: lastRelease.ImageTags,
//	})
//	switch {
//	case err != nil:          // malformed input: Stalled, retrying cannot help
//	case g.Held != nil:       // digests required, tags unresolved: hold, requeue
//	case g.Report.Blocked():  // Stalled with g.Report.Summary(); write nothing
//	default:                  // apply g.Objects (digest-pinned); record
//	                          // g.Resolution.Tags and Pins in the release;
//	                          // g.Report.Warnings() to conditions/events/metrics
//	}
//
// Gate is Resolver.Resolve followed by Evaluate(ctx, objs, cfg,
// WithResolution(res)); both can be called alone. Evaluate is pure: no I/O,
// it never modifies its input, and it judges exception expiry against
// time.Now unless WithNow says otherwise. Resolve is the only part that
// talks to registries (go-containerregistry).
package policy
