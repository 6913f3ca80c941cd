package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// leaderPod keeps berth.dev/leader=true on the agent's own pod while the
// agent leads. Webhooks are served by the leader only (the reconciler they
// trigger runs there), and the install's webhook Service selects the
// label, so a push never lands on a standby replica. It is a manager
// Runnable that needs leader election: it starts when this agent is
// elected and takes the label off when it stops.
type leaderPod struct {
	pods      kubernetes.Interface
	namespace string
	name      string
	log       logr.Logger

	// mu orders clearLabel's attempts before leading is set: a standby's
	// retry never takes the label off once this agent leads.
	mu      sync.Mutex
	leading bool
}

func newLeaderPod(cfg *rest.Config, namespace, name string, log logr.Logger) (*leaderPod, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating client for the leader label: %w", err)
	}
	return &leaderPod{pods: cs, namespace: namespace, name: name, log: log.WithValues("pod", namespace+"/"+name)}, nil
}

// set puts the label on (true) or takes it off the pod.
func (l *leaderPod) set(ctx context.Context, on bool) error {
	value := "null"
	if on {
		value = `"true"`
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, berthv1.LeaderLabel, value)
	if _, err := l.pods.CoreV1().Pods(l.namespace).Patch(ctx, l.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("labelling pod %s/%s %s=%v: %w", l.namespace, l.name, berthv1.LeaderLabel, on, err)
	}
	return nil
}

// clearLabel takes the label off at start: a restarted container of the pod
// that led before is not the leader until elected again. The Service
// would otherwise send webhooks to this standby, which does not listen. It
// retries until it succeeds (the API server that was unreachable when the
// old leader lost its lease may still be), or until this agent leads. It
// is a manager Runnable that runs on every replica.
type clearLabel struct{ *leaderPod }

// NeedLeaderElection reports false: standbys must clear a stale label.
func (clearLabel) NeedLeaderElection() bool { return false }

// Start clears the label, retrying until it succeeds or this agent leads.
func (c clearLabel) Start(ctx context.Context) error {
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		c.mu.Lock()
		if c.leading {
			c.mu.Unlock()
			return nil
		}
		err := c.set(ctx, false)
		c.mu.Unlock()
		if err == nil {
			return nil
		}
		c.log.Error(err, "a stale leader label may route webhooks to this standby replica; retrying", "in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Start labels the pod, retrying until it succeeds, and removes the label
// when ctx ends (leadership lost or the agent stopping).
func (l *leaderPod) Start(ctx context.Context) error {
	l.mu.Lock()
	l.leading = true
	l.mu.Unlock()
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		err := l.set(ctx, true)
		if err == nil {
			l.log.Info("leading: pod labelled, the webhook Service routes here", "label", berthv1.LeaderLabel)
			break
		}
		l.log.Error(err, "webhooks cannot reach this leader until its pod is labelled; retrying", "in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	<-ctx.Done()
	stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.set(stop, false); err != nil {
		l.log.Error(err, "the leader label stays on a pod that no longer leads; the restarted agent takes it off")
	}
	return nil
}
