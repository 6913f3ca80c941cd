package sandbox

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Describe prints what a freshly started sandbox offers: the apiserver and
// its version, the kubeconfig, the nodes as the apiserver sees them, and how
// to use it.
func Describe(ctx context.Context, st *State, w io.Writer) error {
	cfg, err := RESTConfig(st.Dir)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("asking the apiserver for its version: %w", err)
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	fmt.Fprintf(w, "Kubernetes %s is running at https://127.0.0.1:%d\n", v.GitVersion, st.Ports.APIServer)
	fmt.Fprintf(w, "kubeconfig: %s\n\n", st.Kubeconfig())
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATUS\tRUNTIME")
	for _, n := range nodes.Items {
		status := "NotReady"
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				status = "Ready"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Name, status, n.Status.NodeInfo.ContainerRuntimeVersion)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nTry:\n  kubectl --kubeconfig %q create deployment web --image=example.test/web:1 --replicas=3\n", st.Kubeconfig())
	fmt.Fprintf(w, "  kubectl --kubeconfig %q get pods -w\n", st.Kubeconfig())
	fmt.Fprintf(w, "Stop it with: berth sandbox down   (logs: berth sandbox logs COMPONENT)\n")
	return nil
}

// PrintStatus writes s as a table.
func PrintStatus(w io.Writer, s Status) {
	fmt.Fprintf(w, "state:      %s\n", s.Dir)
	fmt.Fprintf(w, "kubeconfig: %s\n", s.Kubeconfig)
	if s.Version != "" {
		fmt.Fprintf(w, "apiserver:  %s (Kubernetes %s)\n\n", s.APIServer, s.Version)
	} else {
		fmt.Fprintf(w, "apiserver:  not answering: %v\n\n", s.VersionErr)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tSTATE\tPID\tLOG")
	for _, c := range s.Components {
		state, pid := "stopped", "-"
		if c.PID != 0 {
			pid = fmt.Sprint(c.PID)
			if c.Running {
				state = "running"
			} else {
				state = "exited"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, state, pid, c.Log)
	}
	_ = tw.Flush()
}
