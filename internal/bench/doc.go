// Package bench measures the agent end to end on the sandbox, the way
// Flux's public benchmark does: N Applications in one repository, each a
// Deployment, ServiceAccount, Service and Ingress. It reports time from
// creation to all Ready, the agent's peak RSS (the agent runs as its own
// process), push→applied latency through the webhook, and drift-heal
// latency. `berth bench` runs it; figures are measured, never asserted.
package bench
