// Package failpoint lets tests kill the agent at named points of its work,
// to prove that an interrupted operation (a rollback, a Helm upgrade) is
// recovered after a restart.
//
// A failpoint is inert unless the process was started with
// BERTH_FAILPOINT=<name>; then the first time the named point is reached
// the process sends itself SIGKILL, exactly as an OOM kill or a node loss
// would end it: no deferred functions run and nothing is flushed. The
// variable is read once, at start-up; it is meant for tests only and is
// documented in docs/testing.md.
package failpoint
