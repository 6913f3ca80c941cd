package apply_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newManager(t *testing.T) (*apply.Manager, *testenv.Env) {
	t.Helper()
	env := testenv.Sandbox(t)
	dc := discovery.NewDiscoveryClientForConfigOrDie(env.Config)
	return apply.NewManager(dynamic.NewForConfigOrDie(env.Config), restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))), env
}

func parse(t *testing.T, file, yaml string) []manifest.Object {
	t.Helper()
	objs, err := manifest.Parse(file, []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestStagedApplyOfCRDNamespaceAndCustomResources(t *testing.T) {
	m, env := newManager(t)
	suffix := strings.ToLower(strings.ReplaceAll(env.Namespace(t), "-", ""))[:12]
	group := suffix + ".example.test"
	ns := "staged-" + suffix
	y := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.` + group + `
spec:
  group: ` + group + `
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
---
apiVersion: v1
kind: Namespace
metadata:
  name: ` + ns + `
---
apiVersion: ` + group + `/v1
kind: Widget
metadata:
  name: w1
  namespace: ` + ns + `
spec:
  size: 3
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: c
  namespace: ` + ns + `
`
	objs := parse(t, "all.yaml", y)
	t.Cleanup(func() {
		deleteCRD(env, "widgets."+group)
		_ = env.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	cs, err := m.Apply(context.Background(), objs)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if cs.Count(apply.Created) != 4 {
		t.Errorf("change set = %s, want 4 created", cs.Summary())
	}
	// Each entry holds what its write returned, those validated only once
	// the CRD and Namespace were written too (the Widget, the ConfigMap):
	// the inventory and the first health check are made of them.
	for _, e := range cs.Entries {
		if e.Live == nil || e.Live.GetUID() == "" {
			t.Errorf("entry %s holds no written object (%v)", e.ID, e.Live)
		}
	}
	cs, err = m.Apply(context.Background(), objs)
	if err != nil || cs.Count(apply.Unchanged) != 4 {
		t.Errorf("second apply = %s, %v; want 4 unchanged", cs.Summary(), err)
	}

	// A revision whose CRD adds a field its custom resource sets: every
	// object is dry-run before anything is written, the resource against
	// the CRD in the cluster, so the revision is refused whole, and says
	// why. With the CRD committed first, the same revision applies.
	v2 := strings.Replace(y, "size: {type: integer}", "size: {type: integer}\n              color: {type: string}", 1)
	crdFirst := v2
	v2 = strings.Replace(v2, "  size: 3\n", "  size: 3\n  color: blue\n", 1)
	_, err = m.Apply(context.Background(), parse(t, "all.yaml", v2))
	if !errors.As(err, new(*apply.ValidationError)) || !strings.Contains(err.Error(), "commit the CRD change on its own first") {
		t.Fatalf("apply of a CRD that adds a field with a resource that sets it: %v, want refused with the hint", err)
	}
	crd, err := dynamic.NewForConfigOrDie(env.Config).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
		Get(context.Background(), "widgets."+group, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprint(crd.Object["spec"]), "color") {
		t.Fatal("the refused revision wrote its CRD")
	}
	if _, err := m.Apply(context.Background(), parse(t, "all.yaml", crdFirst)); err != nil {
		t.Fatalf("apply of the CRD change alone: %v", err)
	}
	if _, err := m.Apply(context.Background(), parse(t, "all.yaml", v2)); err != nil {
		t.Fatalf("apply of the resource once its CRD has the field: %v", err)
	}
	widgets := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}
	w, err := dynamic.NewForConfigOrDie(env.Config).Resource(widgets).Namespace(ns).Get(context.Background(), "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c, _, _ := unstructured.NestedString(w.Object, "spec", "color"); c != "blue" {
		t.Errorf("widget spec = %v, want color blue", w.Object["spec"])
	}

	// With the CRD unchanged, an unknown field is refused before anything
	// is written.
	v3 := strings.Replace(v2, "  color: blue\n", "  color: blue\n  shape: round\n", 1)
	v3 = strings.Replace(v3, "  name: c\n  namespace: "+ns+"\n", "  name: c\n  namespace: "+ns+"\ndata: {changed: \"yes\"}\n", 1)
	_, err = m.Apply(context.Background(), parse(t, "all.yaml", v3))
	var verr *apply.ValidationError
	if !errors.As(err, &verr) || !strings.Contains(err.Error(), "shape") {
		t.Fatalf("apply with an unknown field: %v, want a validation error naming it", err)
	}
	c, err := env.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), "c", metav1.GetOptions{})
	if err != nil || c.Data["changed"] != "" {
		t.Errorf("ConfigMap c = %v, %v: written by a refused revision", c.Data, err)
	}
}

func TestValidationRejectsWholeRevision(t *testing.T) {
	m, env := newManager(t)
	ns := env.Namespace(t)
	objs := parse(t, "app.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: good
  namespace: `+ns+`
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad
  namespace: `+ns+`
spec:
  replicas: "three"
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: unknown-field
  namespace: `+ns+`
spec:
  oops: true
`)
	_, err := m.Apply(context.Background(), objs)
	var ve *apply.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Fatalf("err = %v, want a ValidationError with 2 problems", err)
	}
	if !strings.Contains(err.Error(), "app.yaml:7") || !strings.Contains(err.Error(), "field not declared in schema") {
		t.Errorf("error does not name file:line and the field: %v", err)
	}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), "good", metav1.GetOptions{}); err == nil {
		t.Error("the valid object of a rejected revision was applied")
	}

	// An object in a namespace the revision creates can only be checked
	// once that namespace exists: its refusal says the namespace was
	// applied, not "nothing applied".
	fresh := "fresh-" + strings.ToLower(strings.ReplaceAll(ns, "-", ""))[:12]
	t.Cleanup(func() {
		_ = env.Client.CoreV1().Namespaces().Delete(context.Background(), fresh, metav1.DeleteOptions{})
	})
	_, err = m.Apply(context.Background(), parse(t, "fresh.yaml", `apiVersion: v1
kind: Namespace
metadata:
  name: `+fresh+`
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: bad-key
  namespace: `+fresh+`
data:
  "not a key!": "x"
`))
	if !errors.As(err, &ve) || !ve.AfterStage1 || !strings.Contains(err.Error(), "after its CRDs and Namespaces were applied") {
		t.Fatalf("err = %v, want a ValidationError saying stage 1 was applied", err)
	}
}

// A guard sees the live object of every existing object and can refuse
// the revision; objects that do not exist yet are not shown to it.
func TestGuardRefusesBeforeAnythingIsWritten(t *testing.T) {
	m, env := newManager(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	cm := func(name, v string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: " + ns + "\ndata: {v: " + v + "}\n"
	}
	if _, err := m.Apply(ctx, parse(t, "v1.yaml", cm("taken", "one"))); err != nil {
		t.Fatal(err)
	}
	var seen []string
	guarded := m.WithGuard(func(_ context.Context, live *unstructured.Unstructured) error {
		seen = append(seen, live.GetName())
		if v, _, _ := unstructured.NestedString(live.Object, "data", "v"); v == "one" {
			return errors.New("held by someone else")
		}
		return nil
	})
	_, err := guarded.Apply(ctx, parse(t, "v2.yaml", cm("fresh", "two")+"---\n"+cm("taken", "two")))
	var ve *apply.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || !strings.Contains(err.Error(), "held by someone else") {
		t.Fatalf("err = %v, want one problem from the guard", err)
	}
	if len(seen) != 1 || seen[0] != "taken" {
		t.Errorf("guard saw %v, want only the existing object", seen)
	}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "fresh", metav1.GetOptions{}); err == nil {
		t.Error("an object of the refused revision was written")
	}
	// The Manager it was made from is not guarded.
	if _, err := m.Apply(ctx, parse(t, "v2.yaml", cm("taken", "two"))); err != nil {
		t.Errorf("unguarded apply: %v", err)
	}
}

func TestPruneProtectsDataAndForeignObjects(t *testing.T) {
	m, env := newManager(t)
	ns := env.Namespace(t)
	objs := parse(t, "x.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: owned, namespace: `+ns+`, labels: {owner: me}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: foreign, namespace: `+ns+`}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: keepme, namespace: `+ns+`, labels: {owner: me}, annotations: {berth.dev/prune: "false"}}
---
apiVersion: v1
kind: Secret
metadata: {name: helmkept, namespace: `+ns+`, labels: {owner: me}, annotations: {helm.sh/resource-policy: keep}}
stringData: {password: generated}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: `+ns+`, labels: {owner: me}}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: scratch, namespace: `+ns+`, labels: {owner: me}, annotations: {berth.dev/prune: "true"}}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.`+ns+`.example.test, labels: {owner: me}}
spec:
  group: `+ns+`.example.test
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
---
apiVersion: v1
kind: Namespace
metadata: {name: `+ns+`-empty, labels: {owner: me}, annotations: {berth.dev/prune: "true"}}
---
apiVersion: v1
kind: Namespace
metadata: {name: `+ns+`-full, labels: {owner: me}, annotations: {berth.dev/prune: "true"}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: inside, namespace: `+ns+`-full}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`+statefulSet(ns, "db-deletes", "Delete", "")+statefulSet(ns, "db-retains", "Retain", "")+statefulSet(ns, "db-optin", "Delete", "true"))
	if _, err := m.Apply(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deleteCRD(env, "widgets."+ns+".example.test")
		_ = env.Client.CoreV1().Namespaces().Delete(context.Background(), ns+"-full", metav1.DeleteOptions{})
	})
	var refs []apply.Ref
	for _, o := range objs {
		if o.Object.GetName() == "inside" {
			continue // not in Git any more, but not the Application's either
		}
		refs = append(refs, apply.Ref{GVK: o.Object.GroupVersionKind(), Namespace: o.Object.GetNamespace(), Name: o.Object.GetName()})
	}
	cs, err := m.Prune(context.Background(), refs, apply.PruneOptions{OwnerLabels: map[string]string{"owner": "me"}, PruneAnnotation: "berth.dev/prune"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]apply.Action{}
	for _, e := range cs.Entries {
		got[e.ID[strings.LastIndexAny(e.ID, "/ ")+1:]] = e.Action
	}
	want := map[string]apply.Action{"owned": apply.Deleted, "foreign": apply.Skipped, "keepme": apply.Skipped, "helmkept": apply.Skipped, "data": apply.Skipped, "scratch": apply.Deleted,
		// Deleting a CRD deletes every resource of its kind; deleting a
		// Namespace, every PVC in it.
		"widgets." + ns + ".example.test": apply.Skipped, ns + "-empty": apply.Deleted, ns + "-full": apply.Skipped,
		// A StatefulSet whose claims go with it is data too.
		"db-deletes": apply.Skipped, "db-retains": apply.Deleted, "db-optin": apply.Deleted}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s, want %s (all: %v)", k, got[k], v, got)
		}
	}
	if _, err := env.Client.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), "data", metav1.GetOptions{}); err != nil {
		t.Errorf("the PVC was deleted: %v", err)
	}
}

// failingMapper fails every mapping of one kind with a discovery error
// (not NoMatch), as when an aggregated API is down.
type failingMapper struct {
	meta.ResettableRESTMapper
	kind string
}

func (m failingMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	if gk.Kind == m.kind {
		return nil, errors.New("unable to retrieve the complete list of server APIs: the server is currently unable to handle the request")
	}
	return m.ResettableRESTMapper.RESTMapping(gk, versions...)
}

// An object whose kind cannot be mapped for now is a problem to retry,
// not one skipped for good (the caller drops skipped objects from its
// inventory, and would never prune them).
func TestPruneRetriesWhatItCannotMapForNow(t *testing.T) {
	m, env := newManager(t)
	ns := env.Namespace(t)
	objs := parse(t, "x.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: owned, namespace: `+ns+`, labels: {owner: me}}
`)
	if _, err := m.Apply(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	dc := discovery.NewDiscoveryClientForConfigOrDie(env.Config)
	failing := apply.NewManager(dynamic.NewForConfigOrDie(env.Config),
		failingMapper{restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), "ConfigMap"})
	refs := []apply.Ref{{GVK: schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns, Name: "owned"}}
	opts := apply.PruneOptions{OwnerLabels: map[string]string{"owner": "me"}, PruneAnnotation: "berth.dev/prune"}
	cs, err := failing.Prune(context.Background(), refs, opts)
	if err == nil || len(cs.Entries) != 0 {
		t.Fatalf("prune while the kind cannot be mapped: %+v, %v; want an error and no entry", cs.Entries, err)
	}
	// Once it can, the object is pruned.
	if cs, err = m.Prune(context.Background(), refs, opts); err != nil || len(cs.Entries) != 1 || cs.Entries[0].Action != apply.Deleted {
		t.Fatalf("prune = %+v, %v; want the ConfigMap deleted", cs.Entries, err)
	}
}

// An aggregated API that is down is left out of discovery, as a kind that
// is gone is: the prune of its object is retried, not skipped and
// forgotten.
func TestPruneRetriesTheObjectOfAnAPIThatIsDown(t *testing.T) {
	m, env := newManager(t)
	ns := env.Namespace(t)
	group := ns + ".down.example.test"
	apiServices := schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
	dyn := dynamic.NewForConfigOrDie(env.Config)
	svc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": "v1." + group},
		"spec": map[string]any{"group": group, "version": "v1", "groupPriorityMinimum": int64(1000), "versionPriority": int64(15),
			"insecureSkipTLSVerify": true, "service": map[string]any{"namespace": ns, "name": "nowhere", "port": int64(443)}},
	}}
	if _, err := dyn.Resource(apiServices).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(apiServices).Delete(context.Background(), "v1."+group, metav1.DeleteOptions{})
	})
	refs := []apply.Ref{{GVK: schema.GroupVersionKind{Group: group, Version: "v1", Kind: "Widget"}, Namespace: ns, Name: "w"}}
	opts := apply.PruneOptions{OwnerLabels: map[string]string{"owner": "me"}, PruneAnnotation: "berth.dev/prune"}
	cs, err := m.Prune(context.Background(), refs, opts)
	if err == nil || !strings.Contains(err.Error(), "not served now") || len(cs.Entries) != 0 {
		t.Fatalf("prune of an object whose API is down: %+v, %v; want an error to retry and no entry", cs.Entries, err)
	}
	// A kind that is gone (no API at all) is skipped.
	refs[0].GVK.Group = ns + ".gone.example.test"
	if cs, err = m.Prune(context.Background(), refs, opts); err != nil || len(cs.Entries) != 1 || cs.Entries[0].Action != apply.Skipped {
		t.Fatalf("prune of an object whose kind is gone: %+v, %v; want it skipped", cs.Entries, err)
	}
}

// statefulSet returns a StatefulSet owned by "me" with one claim template,
// its claims' retention on deletion whenDeleted, and the berth.dev/prune
// annotation prune ("" for none).
func statefulSet(ns, name, whenDeleted, prune string) string {
	ann := ""
	if prune != "" {
		ann = `, annotations: {berth.dev/prune: "` + prune + `"}`
	}
	return `---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ` + name + `, namespace: ` + ns + `, labels: {owner: me}` + ann + `}
spec:
  serviceName: ` + name + `
  selector: {matchLabels: {app: ` + name + `}}
  persistentVolumeClaimRetentionPolicy: {whenDeleted: ` + whenDeleted + `}
  template:
    metadata: {labels: {app: ` + name + `}}
    spec: {containers: [{name: db, image: "registry.example.test/db@sha256:` + strings.Repeat("a", 64) + `"}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`
}

// An inventory entry whose kind the cluster no longer serves (its CRD was
// deleted, or its API server is down) is Unknown, not an error that stops
// every health check of the Application.
func TestHealthOfAKindNoLongerServed(t *testing.T) {
	m, env := newManager(t)
	ns := env.Namespace(t)
	if _, err := m.Apply(context.Background(), parse(t, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: here, namespace: "+ns+"}\n")); err != nil {
		t.Fatal(err)
	}
	rep, err := m.Health(context.Background(), []apply.Ref{
		{GVK: schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: ns, Name: "here"},
		{GVK: schema.GroupVersionKind{Group: "gone.example.test", Version: "v1", Kind: "Widget"}, Namespace: ns, Name: "w"},
	})
	if err != nil {
		t.Fatalf("Health = %v", err)
	}
	failing := rep.Failing()
	if rep.Health != apply.Unknown || len(failing) != 1 || failing[0].Status != status.UnknownStatus || !strings.Contains(failing[0].Message, "serves no resource for its kind") {
		t.Errorf("report = %+v", rep)
	}
	// A version no longer served, of a kind that still is: read through
	// the version served.
	rep, err = m.Health(context.Background(), []apply.Ref{{GVK: schema.GroupVersionKind{Version: "v0alpha9", Kind: "ConfigMap"}, Namespace: ns, Name: "here"}})
	if err != nil || rep.Health != apply.Healthy {
		t.Errorf("ConfigMap under an unserved version: %+v, %v", rep, err)
	}
	// And pruned through it, rather than skipped (and forgotten).
	cs, err := m.Prune(context.Background(), []apply.Ref{{GVK: schema.GroupVersionKind{Version: "v0alpha9", Kind: "ConfigMap"}, Namespace: ns, Name: "here"}}, apply.PruneOptions{})
	if err != nil || cs.Count(apply.Deleted) != 1 {
		t.Errorf("prune of a ConfigMap recorded under an unserved version: %s, %v; want it deleted", cs.Summary(), err)
	}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), "here", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap here after its prune: %v, want not found", err)
	}
}

func TestHealthFailsFastOnProgressDeadline(t *testing.T) {
	m, env := newManager(t)
	ns := env.Namespace(t)
	objs := parse(t, "d.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: bad, namespace: `+ns+`}
spec:
  progressDeadlineSeconds: 3
  selector: {matchLabels: {a: bad}}
  template:
    metadata: {labels: {a: bad}}
    spec: {containers: [{name: c, image: "example.test/x:1-never-ready"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: good, namespace: `+ns+`}
spec:
  selector: {matchLabels: {a: good}}
  template:
    metadata: {labels: {a: good}}
    spec: {containers: [{name: c, image: "example.test/x:1"}]}
`)
	if _, err := m.Apply(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	ref := func(n string) apply.Ref {
		return apply.Ref{GVK: schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, Namespace: ns, Name: n}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		good, err := m.Health(context.Background(), []apply.Ref{ref("good")})
		if err != nil {
			t.Fatal(err)
		}
		bad, err := m.Health(context.Background(), []apply.Ref{ref("bad")})
		if err != nil {
			t.Fatal(err)
		}
		if good.Health == apply.Healthy && bad.Health == apply.Degraded {
			if !strings.Contains(bad.Objects[0].Message, "Progress deadline exceeded") {
				t.Errorf("message = %q", bad.Objects[0].Message)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("good = %s, bad = %s (%+v) after 60s; want Healthy and Degraded", good.Health, bad.Health, bad.Objects)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// The apply returns every object's state, so the first health check needs
// no reads: a new Deployment is in progress, a Service Current; an
// unchanged object's state comes from its dry-run and matches a fresh read.
func TestApplyReturnsStateForHealth(t *testing.T) {
	m, env := newManager(t)
	ns := env.Namespace(t)
	objs := parse(t, "app.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: `+ns+`}
spec:
  selector: {matchLabels: {a: web}}
  template:
    metadata: {labels: {a: web}}
    spec: {containers: [{name: c, image: "example.test/x:1"}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: `+ns+`}
spec:
  selector: {a: web}
  ports: [{port: 80}]
`)
	ctx := context.Background()
	cs, err := m.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	live := func(cs apply.ChangeSet) []*unstructured.Unstructured {
		var out []*unstructured.Unstructured
		for _, e := range cs.Entries {
			out = append(out, e.Live)
		}
		return out
	}
	rep, refs, ok := apply.HealthOf(live(cs), time.Time{})
	if !ok || len(refs) != 2 {
		t.Fatalf("HealthOf = %v, %d refs; want every object returned by the apply", ok, len(refs))
	}
	if rep.Health != apply.Progressing {
		t.Fatalf("health right after creating a Deployment = %s (%+v), want Progressing", rep.Health, rep.Objects)
	}
	for i, o := range rep.Objects {
		want := status.CurrentStatus
		if refs[i].GVK.Kind == "Deployment" {
			want = status.InProgressStatus
		}
		if o.Status != want {
			t.Errorf("%s: %s, want %s", o.ID, o.Status, want)
		}
	}

	// Once the rollout is done, an unchanged re-apply reports it Healthy
	// from the dry-run alone, as a read would.
	deadline := time.Now().Add(60 * time.Second)
	for {
		read, err := m.Health(ctx, refs)
		if err != nil {
			t.Fatal(err)
		}
		if read.Health == apply.Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not Healthy after 60s: %+v", read.Objects)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cs, err = m.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Count(apply.Unchanged) != 2 {
		t.Fatalf("re-apply = %s, want 2 unchanged", cs.Summary())
	}
	if rep, _, ok = apply.HealthOf(live(cs), time.Time{}); !ok || rep.Health != apply.Healthy {
		t.Fatalf("unchanged re-apply: HealthOf = %v %s (%+v), want Healthy", ok, rep.Health, rep.Objects)
	}

	// A failed write leaves no state: the caller must read.
	if _, _, ok := apply.HealthOf([]*unstructured.Unstructured{nil}, time.Time{}); ok {
		t.Fatal("HealthOf accepted a missing object")
	}
}

// deleteCRD deletes CustomResourceDefinition name (prune keeps CRDs).
func deleteCRD(env *testenv.Env, name string) {
	_ = dynamic.NewForConfigOrDie(env.Config).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
		Delete(context.Background(), name, metav1.DeleteOptions{})
}

// Git's order (here the reverse of what a cluster needs) does not decide
// the write order: ServiceAccount, Secret and ConfigMap are written before
// the Service, the Service before the Deployment whose Pods use them, the
// Ingress after it, as Helm installs. The order is read from each
// object's resourceVersion, which this API server takes from etcd's
// revision counter at the write.
func TestWritesFollowInstallOrder(t *testing.T) {
	m, env := newManager(t)
	ns := env.Namespace(t)
	objs := parse(t, "app.yaml", `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: `+ns+`}
spec:
  rules:
  - host: web.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: `+ns+`}
spec:
  selector: {matchLabels: {a: web}}
  template:
    metadata: {labels: {a: web}}
    spec:
      serviceAccountName: web
      containers:
      - name: c
        image: "example.test/x:1"
        envFrom: [{configMapRef: {name: web}}, {secretRef: {name: web}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: `+ns+`}
spec:
  selector: {a: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web, namespace: `+ns+`}
data: {MODE: web}
---
apiVersion: v1
kind: Secret
metadata: {name: web, namespace: `+ns+`}
stringData: {TOKEN: t}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: `+ns+`}
`)
	cs, err := m.Apply(context.Background(), objs)
	if err != nil {
		t.Fatal(err)
	}
	type write struct {
		kind string
		rv   int64
	}
	var writes []write
	for _, e := range cs.Entries {
		if e.Action != apply.Created || e.Live == nil {
			t.Fatalf("%s: %s, want created with its state", e.ID, e.Action)
		}
		rv, err := strconv.ParseInt(e.Live.GetResourceVersion(), 10, 64)
		if err != nil {
			t.Fatalf("%s: resourceVersion %q: %v", e.ID, e.Live.GetResourceVersion(), err)
		}
		writes = append(writes, write{e.Live.GetKind(), rv})
	}
	slices.SortFunc(writes, func(a, b write) int { return cmp.Compare(a.rv, b.rv) })
	var got []string
	for _, w := range writes {
		got = append(got, w.kind)
	}
	want := []string{"ServiceAccount", "Secret", "ConfigMap", "Service", "Deployment", "Ingress"}
	if !slices.Equal(got, want) {
		t.Fatalf("written in the order %v, want %v", got, want)
	}
}

// A CRD that never becomes established (its kind is taken by another CRD
// of its group) fails the apply saying why, in the CRD's own words, not
// only that the wait ran out.
func TestACRDThatIsNeverEstablishedSaysWhy(t *testing.T) {
	m, env := newManager(t)
	defer apply.SetEstablishTimeout(3 * time.Second)()
	suffix := strings.ToLower(strings.ReplaceAll(env.Namespace(t), "-", ""))[:12]
	group := suffix + ".example.test"
	crd := func(plural string) string {
		return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ` + plural + `.` + group + `
spec:
  group: ` + group + `
  names: {kind: Gadget, plural: ` + plural + `}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`
	}
	t.Cleanup(func() {
		deleteCRD(env, "gadgets."+group)
		deleteCRD(env, "gizmos."+group)
	})
	if _, err := m.Apply(context.Background(), parse(t, "first.yaml", crd("gadgets"))); err != nil {
		t.Fatal(err)
	}
	_, err := m.Apply(context.Background(), parse(t, "second.yaml", crd("gizmos")))
	if err == nil || !strings.Contains(err.Error(), "not established") || !strings.Contains(err.Error(), "NamesAccepted False") ||
		!strings.Contains(err.Error(), "Gadget") {
		t.Errorf("apply of a CRD whose kind is taken: %v, want it not established, naming the taken kind", err)
	}
}
