package policy

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/berth-dev/berth/internal/manifest"
)

// podTemplate is the pod template an object carries, decoded.
type podTemplate struct {
	// Meta is the template's metadata (the Pod's own for a Pod).
	Meta *metav1.ObjectMeta
	// Spec is the pod spec.
	Spec *corev1.PodSpec
	// Path is the field path of the template's spec inside the object.
	Path []string
	// LongRunning reports whether the pods are meant to run indefinitely
	// (not Jobs or CronJobs), so probes make sense.
	LongRunning bool
}

// podSpecPaths lists, for each core/apps/batch kind, where its pod template
// lives (the path of the template object; the spec is Path+"spec").
var podSpecPaths = map[string][]string{
	"Pod":                   nil,
	"PodTemplate":           {"template"},
	"ReplicationController": {"spec", "template"},
	"Deployment":            {"spec", "template"},
	"ReplicaSet":            {"spec", "template"},
	"StatefulSet":           {"spec", "template"},
	"DaemonSet":             {"spec", "template"},
	"Job":                   {"spec", "template"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template"},
}

// templatePath returns where u's pod template lives, and whether it has one.
func templatePath(u *unstructured.Unstructured) ([]string, bool) {
	gvk := u.GroupVersionKind()
	switch gvk.Group {
	case "", "apps", "batch", "extensions":
	default:
		return nil, false
	}
	p, ok := podSpecPaths[gvk.Kind]
	return p, ok
}

// podOf decodes obj's pod template; nil, nil for kinds without one.
func podOf(obj *manifest.Object) (*podTemplate, error) {
	u := obj.Object
	tp, ok := templatePath(u)
	if !ok {
		return nil, nil
	}
	kind := u.GetKind()
	pt := &podTemplate{Path: append(append([]string{}, tp...), "spec"), LongRunning: kind != "Job" && kind != "CronJob"}
	var metaMap map[string]any
	if tp == nil {
		metaMap, _, _ = unstructured.NestedMap(u.Object, "metadata")
	} else {
		metaMap, _, _ = unstructured.NestedMap(u.Object, append(append([]string{}, tp...), "metadata")...)
	}
	specMap, found, err := unstructured.NestedMap(u.Object, pt.Path...)
	if err != nil {
		return nil, fmt.Errorf("reading pod template: %w", err)
	}
	if !found {
		return nil, nil
	}
	pt.Meta = &metav1.ObjectMeta{}
	pt.Spec = &corev1.PodSpec{}
	if metaMap != nil {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(metaMap, pt.Meta); err != nil {
			return nil, fmt.Errorf("decoding pod template metadata: %w", err)
		}
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(specMap, pt.Spec); err != nil {
		return nil, fmt.Errorf("decoding pod spec: %w", err)
	}
	return pt, nil
}

// containerRef is one container of a pod spec with its kind of list.
type containerRef struct {
	// List is "containers", "initContainers" or "ephemeralContainers".
	List  string
	Index int
	Name  string
	Image string
	c     *corev1.Container // nil for ephemeral containers
}

// label names the container in messages: `container "app"`,
// `init container "setup"`, `ephemeral container "debug"`.
func (c containerRef) label() string {
	switch c.List {
	case "initContainers":
		return fmt.Sprintf("init container %q", c.Name)
	case "ephemeralContainers":
		return fmt.Sprintf("ephemeral container %q", c.Name)
	}
	return fmt.Sprintf("container %q", c.Name)
}

// field returns the path of a field of container c in the pod spec at
// specPath, e.g. "spec.template.spec.containers[1].image".
func (c containerRef) field(specPath []string, leaf string) string {
	p := strings.Join(specPath, ".") + "." + c.List + "[" + strconv.Itoa(c.Index) + "]"
	if leaf != "" {
		p += "." + leaf
	}
	return p
}

// containers lists every container of spec: init, regular, ephemeral.
func containers(spec *corev1.PodSpec) []containerRef {
	var out []containerRef
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		out = append(out, containerRef{List: "initContainers", Index: i, Name: c.Name, Image: c.Image, c: c})
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		out = append(out, containerRef{List: "containers", Index: i, Name: c.Name, Image: c.Image, c: c})
	}
	for i := range spec.EphemeralContainers {
		c := &spec.EphemeralContainers[i]
		out = append(out, containerRef{List: "ephemeralContainers", Index: i, Name: c.Name, Image: c.Image})
	}
	return out
}
