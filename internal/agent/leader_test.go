package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/install"
	"github.com/berth-dev/berth/internal/manifest"
)

// agentPod creates a pod object standing for an agent replica (kwok runs
// it: Ready, with an IP), labelled as the install's Deployment labels its
// pods, with the webhook port the install's Service targets.
func (f *fixture) agentPod(name string, labels map[string]string) {
	f.t.Helper()
	l := map[string]string{"app.kubernetes.io/name": "berth-agent"}
	for k, v := range labels {
		l[k] = v
	}
	must(f.t, f.c.Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns, Labels: l},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "agent", Image: "example.test/berth:1",
			Ports: []corev1.ContainerPort{{Name: "webhooks", ContainerPort: 9292}},
		}}},
	}))
}

// webhookService creates the install's webhook Service in the fixture's
// namespace, exactly as `berth install` renders it.
func (f *fixture) webhookService() {
	f.t.Helper()
	data, err := install.Manifests(install.Options{Namespace: f.ns, Image: "example.test/berth:1", Replicas: 2})
	must(f.t, err)
	objs, err := manifest.Parse("install.yaml", data)
	must(f.t, err)
	for _, o := range objs {
		if o.Object.GetKind() == "Service" && o.Object.GetName() == "berth-webhooks" {
			must(f.t, f.c.Create(context.Background(), o.Object))
			return
		}
	}
	f.t.Fatal("the install manifests have no berth-webhooks Service")
}

// leaders returns the pods labelled as leader.
func (f *fixture) leaders() []string {
	var pods corev1.PodList
	must(f.t, f.c.List(context.Background(), &pods, client.InNamespace(f.ns), client.MatchingLabels{berthv1.LeaderLabel: "true"}))
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

// webhookEndpoints returns the pods the webhook Service routes to, as the
// cluster's EndpointSlice controller sees them.
func (f *fixture) webhookEndpoints() []string {
	var slices discoveryv1.EndpointSliceList
	must(f.t, f.c.List(context.Background(), &slices, client.InNamespace(f.ns), client.MatchingLabels{discoveryv1.LabelServiceName: "berth-webhooks"}))
	var out []string
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.TargetRef != nil && (e.Conditions.Ready == nil || *e.Conditions.Ready) {
				out = append(out, e.TargetRef.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// waitRouting waits until exactly want carries the leader label and the
// webhook Service routes to it alone.
func (f *fixture) waitRouting(want string, what string) {
	f.t.Helper()
	var leaders, endpoints []string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		leaders, endpoints = f.leaders(), f.webhookEndpoints()
		if fmt.Sprint(leaders) == fmt.Sprint([]string{want}) && fmt.Sprint(endpoints) == fmt.Sprint([]string{want}) {
			return
		}
	}
	f.t.Fatalf("%s: labelled leader %v, webhook Service routes to %v; want only %s", what, leaders, endpoints, want)
}

// Two replicas, as `berth install` runs them: only the leader serves
// webhooks, and the install's Service reaches only the leader, through
// the label the leader keeps on its own pod. A stale label (a restarted
// container of the pod that led before) is taken off at start, and the
// label follows the lease when the leader stops.
func TestWebhookServiceFollowsTheLeader(t *testing.T) {
	f := newFixture(t, fixtureOptions{noAgent: true})
	f.webhookService()
	f.agentPod("agent-a", nil)
	f.agentPod("agent-b", map[string]string{berthv1.LeaderLabel: "true"}) // stale

	ea := make(chan struct{})
	f.startAgentIn("agent-a", true, ea)
	select {
	case <-ea:
	case <-time.After(30 * time.Second):
		t.Fatal("the first agent was not elected")
	}
	eb := make(chan struct{})
	hookB := f.startAgentIn("agent-b", true, eb)
	f.waitRouting("agent-a", "agent-a leads, agent-b's stale label is gone")

	// The standby does not serve webhooks at all: the Service must not
	// send them there.
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, hookB+"/hooks/generic", strings.NewReader("{}"))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("the standby answered a webhook (%d): it should not be listening", resp.StatusCode)
	}

	f.agentStops[0]()
	select {
	case <-eb:
	case <-time.After(60 * time.Second):
		t.Fatal("the standby did not take over")
	}
	f.waitRouting("agent-b", "agent-b took over")
	var a corev1.Pod
	f.get(&a, "agent-a")
	if _, ok := a.Labels[berthv1.LeaderLabel]; ok || !strings.Contains(a.Labels["app.kubernetes.io/name"], "berth-agent") {
		t.Errorf("agent-a labels after it stopped = %v", a.Labels)
	}
}
