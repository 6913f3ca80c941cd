// Package renderworker renders Helm charts and Kustomize overlays from Git
// in child processes that the agent can stop, so a chart or overlay that
// would never finish, or would take all memory (a template that includes
// itself twice per level, `until 100000000`, a Kustomize diamond of bases),
// fails its own revision instead of the agent.
//
// Go cannot stop a goroutine, and text/template has no budget: an agent
// that renders in its own process has no way out of such a render but to
// be killed by the kernel, with every other Application. A Pool keeps up
// to Options.Workers processes (the berth binary's hidden `render-worker`
// command, which calls Serve), sends each one render at a time over its
// stdin and reads the result from its stdout, and kills it when it uses
// more than Options.MemoryLimit of its own memory, runs longer than
// Options.Timeout (its own time, lookups left out), answers with more than
// Options.MaxResultBytes, or the caller's context ends. The worker itself
// limits its data (RLIMIT_DATA), so one huge allocation fails at once. A
// killed or crashed worker is replaced at the next render, one that died
// while idle too; one idle for Options.IdleTimeout exits.
//
// Helm's `lookup` still reads the cluster from the agent: the worker asks
// the Pool, which calls the caller's render.Options.Lookup (as the
// Application's account), and sends the answer back. A worker is handed
// no credentials and a minimal environment; it runs as the agent's user,
// so it bounds resources, it is not a security boundary.
package renderworker
