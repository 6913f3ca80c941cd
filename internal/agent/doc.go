// Package agent assembles berth's in-cluster agent: a controller-runtime
// manager with leader election (two replicas are safe: one acts), Prometheus
// metrics, health and readiness probes, the Application reconciler and the
// webhook receiver. `berth agent` runs it; tests run the same code in
// process against the sandbox.
package agent
