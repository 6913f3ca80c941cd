package application

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Priorities of reconcile triggers. controller-runtime's priority queue
// (on by default) serves higher priorities first and keeps the highest
// priority an item was added with.
const (
	// priorityPush: an Application whose directory a push changed. A push
	// to a monorepo also enqueues every other Application of the
	// repository; the one that changed must not wait behind them.
	priorityPush = 10
	// priorityDrift: an Application whose owned object was changed or
	// deleted by hand. It is healed within seconds even while hundreds
	// of polls are due.
	priorityDrift = 5
	// priorityNormal: polls, health rechecks, Application changes.
	priorityNormal = 0
	// priorityLow: the unchanged rest of a pushed repository.
	priorityLow = handler.LowPriority
)

// trigger asks for a reconcile of one Application at a priority.
type trigger struct {
	key      types.NamespacedName
	priority int
}

// triggerSource feeds triggers into the controller's queue with their
// priority (a plain queue, without priorities, just gets them in order).
type triggerSource struct {
	ch <-chan trigger
}

// Start implements source.Source.
func (s triggerSource) Start(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	pq, _ := q.(priorityqueue.PriorityQueue[reconcile.Request])
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case t := <-s.ch:
				req := reconcile.Request{NamespacedName: t.key}
				if pq != nil {
					p := t.priority
					pq.AddWithOpts(priorityqueue.AddOpts{Priority: &p}, req)
				} else {
					q.Add(req)
				}
			}
		}
	}()
	return nil
}

// enqueue asks for a reconcile of namespace/name at priority p. It never
// blocks: when the trigger buffer is full the next poll will come.
func (r *Reconciler) enqueue(namespace, name string, p int) {
	if r.Namespace != "" && namespace != r.Namespace {
		return
	}
	select {
	case r.triggers <- trigger{key: types.NamespacedName{Namespace: namespace, Name: name}, priority: p}:
	default:
	}
}
