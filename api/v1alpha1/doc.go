// Package v1alpha1 contains berth's API types in the group berth.dev:
// Application, the desired state of one app pulled from Git. It imports only
// the standard library and k8s.io/apimachinery, so clients can depend on it
// without the agent.
//
// +kubebuilder:object:generate=true
// +groupName=berth.dev
package v1alpha1
