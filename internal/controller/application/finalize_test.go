package application

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/render"
)

// A failed cleanup that runs off the workers (a chart's pre-delete hook
// failing) is run again a poll later, then less and less often, never
// more than 2 minutes apart.
func TestCleanupRetriesSpreadOut(t *testing.T) {
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 2 * time.Minute, 2 * time.Minute, 2 * time.Minute}
	for failures, w := range want {
		if got := (&cleanupRun{failures: failures}).retryAfter(); got != w {
			t.Errorf("after %d failures in a row: retry after %s, want %s", failures+1, got, w)
		}
	}
}

// What finalize does with a cleanup run off the workers: waits while it
// runs; takes a failure once, then waits for its retry (unless the
// patience is over: then the failure is taken again, to give up); takes a
// success every time (a failed finalizer removal does not clean up
// again); ignores a run of an earlier Application of the same name.
func TestCleanupRunStates(t *testing.T) {
	deleted := metav1.NewTime(time.Now().Add(-time.Minute))
	app := &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", UID: "1", DeletionTimestamp: &deleted}}
	key := types.NamespacedName{Namespace: "ns", Name: "a"}
	r := &Reconciler{}
	boom := errors.New("hook failed")
	run := &cleanupRun{uid: "1", done: make(chan struct{}), cancel: func() {}}
	r.cleanups.Store(key, run)

	if wait, busy := r.cleanupBusy(app); !busy || wait != cleanupPoll {
		t.Errorf("running: busy %v, wait %s; want busy, a poll", busy, wait)
	}
	run.err = boom
	close(run.done)
	if _, busy := r.cleanupBusy(app); busy {
		t.Error("ended, not taken: busy")
	}
	if ended, err := r.cleanupOutcome(app); !ended || err != boom {
		t.Errorf("ended: outcome %v, %v; want the failure", err, ended)
	}
	if wait, busy := r.cleanupBusy(app); !busy || wait <= 0 || wait > run.retryAfter() {
		t.Errorf("failure taken: busy %v, wait %s; want to wait up to %s for the retry", busy, wait, run.retryAfter())
	}
	run.collected = time.Now().Add(-run.retryAfter())
	if _, busy := r.cleanupBusy(app); busy {
		t.Error("retry due: busy")
	}
	if ended, err := r.cleanupOutcome(app); ended {
		t.Errorf("retry due: outcome %v taken again; want a new run", err)
	}
	long := metav1.NewTime(time.Now().Add(-cleanupPatience))
	app.DeletionTimestamp = &long
	run.collected = time.Now()
	if _, busy := r.cleanupBusy(app); busy {
		t.Error("patience over: busy")
	}
	if ended, err := r.cleanupOutcome(app); !ended || err != boom {
		t.Errorf("patience over: outcome %v, %v; want the failure again, to give up", err, ended)
	}

	ok := &cleanupRun{uid: "1", done: make(chan struct{}), cancel: func() {}}
	close(ok.done)
	r.cleanups.Store(key, ok)
	for i := range 2 {
		if ended, err := r.cleanupOutcome(app); !ended || err != nil {
			t.Errorf("success, look %d: outcome %v, %v; want it taken", i+1, err, ended)
		}
	}

	other := app.DeepCopy()
	other.UID = "2"
	if _, busy := r.cleanupBusy(other); busy {
		t.Error("a run of an earlier Application of the name counts as this one's")
	}
	cancelled := false
	running := &cleanupRun{uid: "1", done: make(chan struct{}), cancel: func() { cancelled = true }}
	r.cleanups.Store(key, running)
	if held := r.earlierCleanupRuns(other); !held || !cancelled {
		t.Errorf("a running cleanup of an earlier Application: new one held %v, cleanup cancelled %v; want both", held, cancelled)
	}
	close(running.done)
	if r.earlierCleanupRuns(other) {
		t.Error("an ended run of an earlier Application holds up the new one")
	}
	if _, still := r.cleanups.Load(key); still {
		t.Error("an ended run of an earlier Application was not dropped")
	}
}

// With a manager, a chart's cleanup runs only off the workers, while this
// process leads: before leadCleanups has seen leadership, or after it
// ended, a worker does not run it instead. Other Applications, and a
// Reconciler without a manager, clean up in place. forget cancels a run
// and keeps it until it has ended; a retry never waits past the patience.
func TestCleanupStartsOnlyWhileLeading(t *testing.T) {
	deleted := metav1.NewTime(time.Now().Add(-time.Minute))
	chart := &berthv1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", UID: "1", DeletionTimestamp: &deleted},
		Status: berthv1.ApplicationStatus{Renderer: string(render.Helm)}}
	plain := chart.DeepCopy()
	plain.Status.Renderer = string(render.Plain)
	ctx := context.Background()

	if got := (&Reconciler{}).cleanUpOffWorker(ctx, chart); got != inPlace {
		t.Errorf("no manager: %v, want in place", got)
	}
	r := &Reconciler{offWorker: true}
	if got := r.cleanUpOffWorker(ctx, plain); got != inPlace {
		t.Errorf("a plain Application: %v, want in place", got)
	}
	if got := r.cleanUpOffWorker(ctx, chart); got != notNow {
		t.Errorf("a chart before leadership: %v, want not now", got)
	}
	over, cancel := context.WithCancel(ctx)
	cancel()
	r.leading = over
	if got := r.cleanUpOffWorker(ctx, chart); got != notNow {
		t.Errorf("a chart after leadership: %v, want not now", got)
	}

	key := types.NamespacedName{Namespace: "ns", Name: "a"}
	cancelled := false
	run := &cleanupRun{uid: "1", done: make(chan struct{}), cancel: func() { cancelled = true }}
	r.cleanups.Store(key, run)
	r.forget(key)
	if _, kept := r.cleanups.Load(key); !cancelled || !kept {
		t.Errorf("forget of a running cleanup: cancelled %v, kept %v; want both", cancelled, kept)
	}
	run.err = errors.New("hook failed")
	close(run.done)
	run.failures = 3 // next retry 80 s later
	run.collected = time.Now()
	nearlyOver := metav1.NewTime(time.Now().Add(-cleanupPatience + 5*time.Second))
	chart.DeletionTimestamp = &nearlyOver
	if wait, busy := r.cleanupBusy(chart); !busy || wait > 5*time.Second {
		t.Errorf("a retry due after the patience: busy %v, wait %s; want at most the 5 s left", busy, wait)
	}
	r.forget(key)
	if _, kept := r.cleanups.Load(key); kept {
		t.Error("forget of an ended cleanup kept it")
	}
}
