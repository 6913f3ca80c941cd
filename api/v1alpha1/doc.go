// Package v1alpha1 is reserved for berth's CRD types (Application, Release,
// ...) in the API group berth.dev. It imports only the standard library and
// k8s.io/apimachinery, so clients can depend on it without the agent.
package v1alpha1
