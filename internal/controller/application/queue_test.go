package application

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// A drifted Application is served before polls and health rechecks that
// were queued earlier, and after a push.
func TestDriftIsServedAheadOfPolls(t *testing.T) {
	r := &Reconciler{triggers: make(chan trigger, 16)}
	q := priorityqueue.New[reconcile.Request]("drift-order")
	defer q.ShutDown()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := (triggerSource{ch: r.triggers}).Start(ctx, q); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"poll-1", "poll-2", "poll-3"} {
		r.enqueue("team", n, priorityNormal)
	}
	r.driftSeen("team", "edited")
	r.enqueue("team", "pushed", priorityPush)
	if _, ok := r.suspectDrift.Load(types.NamespacedName{Namespace: "team", Name: "edited"}); !ok {
		t.Error("driftSeen did not mark the Application as drifted")
	}
	deadline := time.Now().Add(10 * time.Second)
	for q.Len() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d items, want 5", q.Len())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var got []string
	for range 5 {
		item, _ := q.Get()
		got = append(got, item.Name)
		q.Done(item)
	}
	if got[0] != "pushed" || got[1] != "edited" {
		t.Errorf("served %v, want the push, then the drift, then the polls", got)
	}
}
