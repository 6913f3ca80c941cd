package policy

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/berth-dev/berth/internal/manifest"
)

// Resource and probe rule IDs.
const (
	RuleContainerResources = "container-resources"
	RuleContainerProbes    = "container-probes"
	RuleReplicasAutoscaled = "replicas-autoscaled"
)

func init() {
	register(
		&Rule{
			ID: RuleReplicasAutoscaled, Family: "resources", Severity: SeverityMedium, DefaultMode: ModeWarn,
			Summary:  "a workload sets spec.replicas and a HorizontalPodAutoscaler of the revision scales it",
			Fix:      "leave spec.replicas out of the workload (the autoscaler owns it; Helm's scaffold: {{- if not .Values.autoscaling.enabled }}); where berth applied it before, the API server drops the field once berth stops setting it, and the count falls to 1 until the autoscaler scales again",
			checkAll: replicasAutoscaled,
		},
		&Rule{
			ID: RuleContainerResources, Family: "resources", Severity: SeverityLow, DefaultMode: ModeWarn,
			Summary: "a container (or init container) has no CPU/memory requests or no memory limit",
			Fix:     "set resources.requests.cpu, resources.requests.memory and resources.limits.memory on every container",
			check: func(_ *evalContext, obj *manifest.Object, pod *podTemplate) []finding {
				if pod == nil {
					return nil
				}
				var out []finding
				for _, c := range containers(pod.Spec) {
					if c.c == nil { // ephemeral containers may not set resources
						continue
					}
					var missing []string
					req, lim := c.c.Resources.Requests, c.c.Resources.Limits
					if _, ok := req[corev1.ResourceCPU]; !ok {
						missing = append(missing, "requests.cpu")
					}
					if _, ok := req[corev1.ResourceMemory]; !ok {
						if _, ok := lim[corev1.ResourceMemory]; !ok { // a limit alone defaults the request
							missing = append(missing, "requests.memory")
						}
					}
					if _, ok := lim[corev1.ResourceMemory]; !ok {
						missing = append(missing, "limits.memory")
					}
					if len(missing) > 0 {
						out = append(out, finding{obj: obj, field: c.field(pod.Path, ""), message: fmt.Sprintf("%s has no %s", c.label(), strings.Join(missing, ", "))})
					}
				}
				return out
			},
		},
		&Rule{
			ID: RuleContainerProbes, Family: "resources", Severity: SeverityLow, DefaultMode: ModeWarn,
			Summary: "a long-running container has no readiness or liveness probe",
			Fix:     "add readinessProbe (traffic only when ready) and livenessProbe (restart when stuck) to every container of long-running workloads",
			check: func(_ *evalContext, obj *manifest.Object, pod *podTemplate) []finding {
				if pod == nil || !pod.LongRunning {
					return nil
				}
				var out []finding
				for i := range pod.Spec.Containers {
					c := &pod.Spec.Containers[i]
					var missing []string
					if c.ReadinessProbe == nil {
						missing = append(missing, "readinessProbe")
					}
					if c.LivenessProbe == nil {
						missing = append(missing, "livenessProbe")
					}
					if len(missing) > 0 {
						out = append(out, finding{obj: obj, field: fmt.Sprintf("%s.containers[%d]", strings.Join(pod.Path, "."), i), message: fmt.Sprintf("container %q has no %s", c.Name, strings.Join(missing, " or "))})
					}
				}
				// Restartable init containers (sidecars) run for the pod's lifetime.
				for i := range pod.Spec.InitContainers {
					c := &pod.Spec.InitContainers[i]
					if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways && c.ReadinessProbe == nil && c.LivenessProbe == nil {
						out = append(out, finding{obj: obj, field: fmt.Sprintf("%s.initContainers[%d]", strings.Join(pod.Path, "."), i), message: fmt.Sprintf("sidecar init container %q has no readinessProbe or livenessProbe", c.Name)})
					}
				}
				return out
			},
		},
	)
}

// replicasAutoscaled finds workloads that set spec.replicas while an
// autoscaler of the same revision scales them: every apply would set the
// count back (berth heals drift), and the autoscaler would scale again.
func replicasAutoscaled(_ *evalContext, objs []manifest.Object) []finding {
	// Namespaces are compared only when both are set: berth check reads
	// manifests before the destination namespace is filled in.
	type target struct{ group, kind, name string }
	type scaler struct{ ns, name string }
	scaledBy := map[target][]scaler{}
	for i := range objs {
		u := objs[i].Object
		if u == nil || u.GetKind() != "HorizontalPodAutoscaler" || u.GroupVersionKind().Group != "autoscaling" {
			continue
		}
		kind, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "kind")
		name, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "name")
		apiVersion, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "apiVersion")
		gv, err := schema.ParseGroupVersion(apiVersion)
		if err != nil || kind == "" || name == "" {
			continue
		}
		t := target{gv.Group, kind, name}
		scaledBy[t] = append(scaledBy[t], scaler{u.GetNamespace(), u.GetName()})
	}
	if len(scaledBy) == 0 {
		return nil
	}
	var out []finding
	for i := range objs {
		obj := &objs[i]
		u := obj.Object
		if u == nil {
			continue
		}
		hpa := ""
		for _, sc := range scaledBy[target{u.GroupVersionKind().Group, u.GetKind(), u.GetName()}] {
			if sc.ns == "" || u.GetNamespace() == "" || sc.ns == u.GetNamespace() {
				hpa = sc.name
				break
			}
		}
		if hpa == "" {
			continue
		}
		if _, set, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "replicas"); set {
			out = append(out, finding{obj: obj, field: "spec.replicas", message: fmt.Sprintf("sets spec.replicas, and HorizontalPodAutoscaler %s scales it: each sync would set the count back", hpa)})
		}
	}
	return out
}
