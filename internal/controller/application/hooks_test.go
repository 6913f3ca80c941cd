package application

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/render"
)

func obj(t *testing.T, y string) manifest.Object {
	t.Helper()
	objs, err := manifest.Parse("test.yaml", []byte(y))
	if err != nil || len(objs) != 1 {
		t.Fatalf("parse: %v (%d objects)", err, len(objs))
	}
	return objs[0]
}

const testJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: backup
  annotations: {berth.dev/hook: %s}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: a
        image: example.test/a:1
        env: [{name: KEEP, value: "1"}]
      initContainers:
      - name: b
        image: example.test/b:1
`

func job(t *testing.T, kind string) manifest.Object {
	return obj(t, strings.Replace(testJob, "%s", kind, 1))
}

func TestSplitHooks(t *testing.T) {
	cm := obj(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
	hookedCM := obj(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, annotations: {berth.dev/hook: pre-sync}}\n")
	for _, tc := range []struct {
		name    string
		kind    render.Kind
		objs    []manifest.Object
		hooks   []string
		wantErr string
	}{
		{"no hooks", render.Plain, []manifest.Object{cm}, nil, ""},
		{"both", render.Plain, []manifest.Object{cm, job(t, "pre-sync"), job(t, "restore")}, []string{"pre-sync", "restore"}, ""},
		{"kustomize", render.Kustomize, []manifest.Object{job(t, "restore")}, []string{"restore"}, ""},
		{"not a job", render.Plain, []manifest.Object{hookedCM}, nil, "only valid on a batch/v1 Job"},
		{"unknown kind", render.Plain, []manifest.Object{job(t, "post-sync")}, nil, `not "post-sync"`},
		{"twice", render.Plain, []manifest.Object{job(t, "pre-sync"), job(t, "pre-sync")}, nil, "a second pre-sync hook"},
		{"helm", render.Helm, []manifest.Object{job(t, "pre-sync")}, nil, "use Helm's own hooks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work, hs, err := splitHooks(tc.kind, tc.objs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(work)+len(hs) != len(tc.objs) || len(hs) != len(tc.hooks) {
				t.Fatalf("%d workload + %d hooks from %d objects", len(work), len(hs), len(tc.objs))
			}
			for _, h := range tc.hooks {
				if hs[h].Object == nil {
					t.Errorf("hook %s missing", h)
				}
			}
		})
	}
}

func TestHookJobNamesAndEnvironment(t *testing.T) {
	h := job(t, "pre-sync")
	j := hookJob(h, "abcd1234-9f9f9f", map[string]string{envSnapshot: "snap-1", envCommit: "abcd"})
	if j.Object.GetName() != "backup-abcd1234-9f9f9f" {
		t.Errorf("name = %q", j.Object.GetName())
	}
	if h.Object.GetName() != "backup" {
		t.Error("the hook template was modified")
	}
	for _, path := range [][]string{{"spec", "template", "spec", "containers"}, {"spec", "template", "spec", "initContainers"}} {
		cs, _, _ := unstructured.NestedSlice(j.Object.Object, path...)
		env := cs[0].(map[string]any)["env"].([]any)
		got := map[string]string{}
		for _, e := range env {
			m := e.(map[string]any)
			got[m["name"].(string)] = m["value"].(string)
		}
		if got[envSnapshot] != "snap-1" || got[envCommit] != "abcd" || got[envApplication] != "" {
			t.Errorf("%v env = %v", path, got)
		}
		if path[len(path)-1] == "containers" && got["KEEP"] != "1" {
			t.Errorf("the Job's own variables were dropped: %v", got)
		}
	}
	// A TTL would delete the finished Job, and the next check would run
	// it again.
	ttl := obj(t, strings.Replace(strings.Replace(testJob, "%s", "restore", 1), "spec:\n  template:", "spec:\n  ttlSecondsAfterFinished: 0\n  template:", 1))
	if _, found, _ := unstructured.NestedFieldNoCopy(ttl.Object.Object, "spec", "ttlSecondsAfterFinished"); !found {
		t.Fatal("test Job has no TTL")
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(hookJob(ttl, "r1", nil).Object.Object, "spec", "ttlSecondsAfterFinished"); found {
		t.Error("the hook Job keeps ttlSecondsAfterFinished")
	}
	long := hookJob(h, strings.Repeat("x", 80), nil)
	if n := len(long.Object.GetName()); n > 63 {
		t.Errorf("name of %d characters", n)
	}
	if hookJob(h, strings.Repeat("x", 80), nil).Object.GetName() != long.Object.GetName() {
		t.Error("a shortened name is not stable")
	}
}

func TestRetriesStatefulSets(t *testing.T) {
	app := &berthv1.Application{}
	app.Status.Inventory = []berthv1.ObjectRef{{Group: "apps", Version: "v1", Kind: "StatefulSet", Name: "db"}}
	if retriesStatefulSets(app) || !autoRollback(app) {
		t.Error("default policy must roll back")
	}
	app.Spec.Rollback.StatefulSets = berthv1.StatefulSetRetry
	if !retriesStatefulSets(app) || autoRollback(app) {
		t.Error("Retry with a StatefulSet must retry, not roll back")
	}
	app.Status.Inventory[0].Kind = "Deployment"
	if retriesStatefulSets(app) || !autoRollback(app) {
		t.Error("Retry without a StatefulSet must roll back")
	}
	off := false
	app.Spec.Rollback.Automatic = &off
	if autoRollback(app) {
		t.Error("automatic: false must not roll back")
	}
}

// A hook is done when its Job is Complete, not when it has started (which
// kstatus already counts as Current); a Failed Job is an error.
func TestJobOutcomeWaitsForCompletion(t *testing.T) {
	job := func(status map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "batch/v1", "kind": "Job",
			"metadata": map[string]any{"name": "backup-1", "namespace": "ns"},
			"status":   status,
		}}
	}
	running := job(map[string]any{"startTime": "2026-11-26T08:00:00Z", "active": int64(1)})
	if res, err := status.Compute(running); err != nil || res.Status != status.CurrentStatus {
		t.Fatalf("kstatus of a running Job = %v, %v; this test assumes Current", res, err)
	}
	if done, err := jobOutcome(running); done || err != nil {
		t.Fatalf("running Job: done=%v err=%v, want still running", done, err)
	}
	complete := job(map[string]any{"succeeded": int64(1), "conditions": []any{
		map[string]any{"type": "SuccessCriteriaMet", "status": "True"},
		map[string]any{"type": "Complete", "status": "True"},
	}})
	if done, err := jobOutcome(complete); !done || err != nil {
		t.Fatalf("complete Job: done=%v err=%v", done, err)
	}
	failed := job(map[string]any{"failed": int64(1), "conditions": []any{
		map[string]any{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"},
	}})
	if done, err := jobOutcome(failed); done || err == nil || !strings.Contains(err.Error(), "BackoffLimitExceeded") {
		t.Fatalf("failed Job: done=%v err=%v", done, err)
	}
}
