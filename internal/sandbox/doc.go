// Package sandbox builds and runs a real, local Kubernetes control plane on
// loopback: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
// kwok (simulated nodes and pod lifecycle).
//
// Every component is compiled from the Go module proxy on first use into a
// cache directory keyed by the pinned versions and by the embedded build
// modules (see Build), so later starts take seconds. The Kubernetes build
// lives in its own small Go module, embedded under modules/, so berth's own
// module never depends on k8s.io/kubernetes.
//
// A running sandbox is described by a State stored in its state directory,
// next to its certificates, its kubeconfig, etcd's data and one log file per
// component. Up starts the components with freshly chosen free ports, Down
// stops exactly the processes Up recorded (by PID, after checking that the
// PID still runs the recorded binary) and removes nothing, and Inspect
// reports which components run.
//
// The sandbox simulates failing workloads deterministically (see
// FailAnnotation and docs/sandbox.md): a container image whose tag ends in
// "-never-ready" or "-crashloop", or a pod annotated with FailAnnotation,
// never becomes Ready, so a Deployment rollout ends in
// ProgressDeadlineExceeded as it does in a real cluster.
package sandbox
