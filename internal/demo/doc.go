// Package demo runs berth end to end on one machine: the sandbox, a local
// Git server holding the example GitOps repository (package examples), the
// agent as a local process, and one Application per example app and
// environment. `berth up` starts it and waits until every Application is
// Ready; `berth down` stops exactly what it started, by PID.
//
// Pushes to the local repository notify the agent through a post-receive
// hook that sends a signed webhook (`berth notify`), so a change arrives in
// about a second instead of at the next poll.
package demo
