package sandbox

import (
	"context"
	_ "embed"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// FailAnnotation on a pod selects a simulated failure: "never-ready" (the
// container runs but never passes readiness) or "crashloop" (the container
// exits with code 1 and waits in CrashLoopBackOff). Image tags ending in
// "-never-ready" or "-crashloop" select the same behaviour.
const FailAnnotation = "sandbox.berth.dev/fail"

// stagesYAML holds the kwok pod Stages: kwok's fast pod lifecycle, with
// readiness withheld from pods selected for failure, plus the failure stages.
//
//go:embed stages/pod-stages.yaml
var stagesYAML []byte

// NodeName returns the name of the i-th kwok node (0-based).
func NodeName(i int) string { return fmt.Sprintf("berth-sandbox-node-%d", i) }

func ensureNodes(ctx context.Context, cs kubernetes.Interface, n int) error {
	for i := range n {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        NodeName(i),
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": NodeName(i),
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		}}
		_, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating node %s: %w", node.Name, err)
		}
	}
	return nil
}

func nodesReady(ctx context.Context, cs kubernetes.Interface, n int) (bool, error) {
	for i := range n {
		node, err := cs.CoreV1().Nodes().Get(ctx, NodeName(i), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready := false
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return false, fmt.Errorf("node %s not Ready", node.Name)
		}
	}
	return true, nil
}
