package application

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
)

// deployment returns a Deployment as the API server would return it:
// rolled out (available) or stuck past its progress deadline.
func deployment(name string, failed bool) *unstructured.Unstructured {
	cond := map[string]any{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
	if failed {
		cond = map[string]any{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name, "namespace": "ns", "generation": int64(1)},
		"spec":     map[string]any{"replicas": int64(1)},
		"status": map[string]any{"observedGeneration": int64(1), "replicas": int64(1), "updatedReplicas": int64(1),
			"readyReplicas": int64(1), "availableReplicas": int64(1), "conditions": []any{cond}},
	}}
}

// A sync's own results decide the next health check: an object that went
// bad is reported, even when an earlier check had left only another object
// to wait for.
func TestSeedHealthReplacesWhatAnEarlierCheckWaitedFor(t *testing.T) {
	r := &Reconciler{}
	app := &berthv1.Application{}
	app.Namespace, app.Name = "ns", "app"
	app.Status.LastAppliedDigest = "sha256:d"
	app.Status.Inventory = []berthv1.ObjectRef{
		{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "ns", Name: "a"},
		{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "ns", Name: "b"},
	}
	key := types.NamespacedName{Namespace: "ns", Name: "app"}
	// An earlier check left only a to wait for, at the same digest.
	r.waiting.Store(key, waitingFor{digest: "sha256:d", refs: refsOf(app.Status.Inventory[:1]), total: 2})

	cs := apply.ChangeSet{Entries: []apply.Entry{
		{Action: apply.Unchanged, Live: deployment("a", false)},
		{Action: apply.Unchanged, Live: deployment("b", true)},
	}}
	seed := r.seedHealth(app, cs)
	if _, ok := r.waiting.Load(key); ok {
		t.Fatal("the earlier check's waiting list survived the sync")
	}
	if seed == nil {
		t.Fatal("a Degraded verdict from the sync was dropped")
	}
	// No manager: the check must not read anything.
	rep, err := r.healthReport(context.Background(), app, nil, time.Time{}, seed)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Health != apply.Degraded || len(rep.Objects) != 2 || rep.Objects[1].Status != status.FailedStatus {
		t.Fatalf("health = %s %+v, want Degraded with b Failed", rep.Health, rep.Objects)
	}

	// A sync whose change set carries no state (Validate, Helm) leaves the
	// next check to read everything: nothing seeded, nothing waiting.
	r.waiting.Store(key, waitingFor{digest: "sha256:d", refs: refsOf(app.Status.Inventory[:1]), total: 2})
	if seed := r.seedHealth(app, apply.ChangeSet{Entries: []apply.Entry{{Action: apply.Unchanged}, {Action: apply.Unchanged}}}); seed != nil {
		t.Fatal("seeded from a change set without state")
	}
	if _, ok := r.waiting.Load(key); ok {
		t.Fatal("waiting list kept after a sync without state")
	}
}

// A check that waits only for the objects still in progress reads them
// all before calling the Application Healthy when another of its objects
// changed its status since (a Deployment whose Secret broke it while
// another rolled out): else the release would be sealed Healthy with that
// object failing.
func TestAStatusChangeElsewhereHasTheLastCheckReadEverything(t *testing.T) {
	deploy := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(deploy, meta.RESTScopeNamespace)
	rm := &staleMapper{RESTMapper: mapper, fresh: mapper}
	available := deployment("a", false)
	conds, _, _ := unstructured.NestedSlice(available.Object, "status", "conditions")
	_ = unstructured.SetNestedSlice(available.Object, append(conds, map[string]any{"type": "Available", "status": "True"}), "status", "conditions")
	var reads []string
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{gvr: "DeploymentList"}, available, deployment("c", true))
	dyn.PrependReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		reads = append(reads, a.(k8stesting.GetAction).GetName())
		return false, nil, nil
	})
	r := &Reconciler{Mapper: rm}
	app := &berthv1.Application{}
	app.Namespace, app.Name = "ns", "app"
	app.Status.LastAppliedDigest = "sha256:d"
	app.Status.Inventory = []berthv1.ObjectRef{
		{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "ns", Name: "a"},
		{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "ns", Name: "c"},
	}
	key := types.NamespacedName{Namespace: "ns", Name: "app"}
	r.lastFetch.Store(key, time.Now()) // an Application this process reconciles
	mgr := apply.NewManager(dyn, rm)
	waitForA := func() {
		r.waiting.Store(key, waitingFor{digest: "sha256:d", refs: refsOf(app.Status.Inventory[:1]), total: 2})
	}

	// Only a's own status changed: a is read, nothing else.
	waitForA()
	r.statusChanged(key, objectID{gr: gvr.GroupResource(), namespace: "ns", name: "a"})
	rep, err := r.healthReport(context.Background(), app, mgr, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Health != apply.Healthy || strings.Join(reads, ",") != "a" {
		t.Fatalf("health %s (%+v) after reading %v; want Healthy, a read alone", rep.Health, rep.Objects, reads)
	}

	// c, Current when the subset was taken, changed since: all are read,
	// and c's failure is the verdict.
	reads = nil
	waitForA()
	r.statusChanged(key, objectID{gr: gvr.GroupResource(), namespace: "ns", name: "c"})
	if rep, err = r.healthReport(context.Background(), app, mgr, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	if rep.Health != apply.Degraded || strings.Join(reads, ",") != "a,a,c" {
		t.Fatalf("health %s after reading %v; want Degraded, a then a and c read", rep.Health, reads)
	}
	// Read whole: the mark is spent.
	if r.touchedBesides(key, refsOf(app.Status.Inventory[:1])) {
		t.Error("the status change is still marked after a whole read")
	}
}

// A Job with ttlSecondsAfterFinished that this agent saw complete counts
// Current once the cluster removed it (no release read needed); the mark
// belongs to the release it was seen for.
func TestARemovedTTLJobSeenCompleteIsCurrent(t *testing.T) {
	r := &Reconciler{}
	app := &berthv1.Application{}
	app.Namespace, app.Name = "ns", "app"
	app.Status.CurrentRelease = 3
	id := "batch/Job ns/migrate"
	done := apply.Report{Health: apply.Healthy, Objects: []apply.ObjectHealth{{ID: id, Status: status.CurrentStatus, Completed: true}}}
	if rep := r.excuseTTLJobs(context.Background(), app, done); rep.Health != apply.Healthy {
		t.Fatalf("a complete Job: %s", rep.Health)
	}
	gone := apply.Report{Health: apply.Degraded, Objects: []apply.ObjectHealth{
		{ID: "apps/Deployment ns/web", Status: status.CurrentStatus},
		{ID: id, Status: status.NotFoundStatus, Message: "not found"},
	}}
	rep := r.excuseTTLJobs(context.Background(), app, gone)
	if rep.Health != apply.Healthy || rep.Objects[1].Status != status.CurrentStatus || rep.Objects[1].Message != gonePastTTL {
		t.Fatalf("removed after it completed: %s %+v, want Healthy, the Job Current", rep.Health, rep.Objects)
	}
	// The mark is the release's.
	v, _ := r.ttlJobs.Load(types.NamespacedName{Namespace: "ns", Name: "app"})
	if tr := v.(*ttlRelease); tr.number != 3 || !tr.completed[id] || len(tr.completed) != 1 {
		t.Errorf("recorded %+v, want the Job complete for release 3", tr)
	}
}

// A Job last seen running (kstatus counts it Current from its start) and
// then removed is missing: it may have failed. A retry of its release
// forgets what was seen.
func TestARemovedTTLJobLastSeenRunningIsMissing(t *testing.T) {
	r := &Reconciler{}
	app := &berthv1.Application{}
	app.Namespace, app.Name = "ns", "app"
	app.Status.CurrentRelease = 3
	id := "batch/Job ns/migrate"
	running := apply.Report{Health: apply.Healthy, Objects: []apply.ObjectHealth{{ID: id, Status: status.CurrentStatus}}}
	r.excuseTTLJobs(context.Background(), app, running)
	gone := apply.Report{Health: apply.Degraded, Objects: []apply.ObjectHealth{{ID: id, Status: status.NotFoundStatus}}}
	if rep := r.excuseTTLJobs(context.Background(), app, gone); rep.Health != apply.Degraded {
		t.Errorf("removed while last seen running: %s %+v, want Degraded", rep.Health, rep.Objects)
	}
	// Seen complete, then run again (a retry) and seen running: the old
	// mark does not excuse the new run.
	done := apply.Report{Health: apply.Healthy, Objects: []apply.ObjectHealth{{ID: id, Status: status.CurrentStatus, Completed: true}}}
	r.excuseTTLJobs(context.Background(), app, done)
	r.excuseTTLJobs(context.Background(), app, running)
	if rep := r.excuseTTLJobs(context.Background(), app, gone); rep.Health != apply.Degraded {
		t.Errorf("removed after a second run was last seen running: %s, want Degraded", rep.Health)
	}
	r.excuseTTLJobs(context.Background(), app, done)
	r.forgetTTLJobs(app)
	if _, ok := r.ttlJobs.Load(types.NamespacedName{Namespace: "ns", Name: "app"}); ok {
		t.Error("a retry kept what was seen of the release's Jobs")
	}
}
