package helmrelease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	chartcommon "helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/kube"
	kubefake "helm.sh/helm/v4/pkg/kube/fake"
	"helm.sh/helm/v4/pkg/release/common"
	rspb "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/resource"

	"github.com/berth-dev/berth/internal/manifest"
)

// recorder is Helm's fake client, building what it is given and logging
// what it creates and deletes; a create of the object named failCreate
// fails. It stands in for the cluster in the order checks below; the
// agent's TestDeletingAHelmApplicationRunsItsDeleteHooks runs the same
// code against the sandbox.
type recorder struct {
	kubefake.FailingKubeClient
	log        *[]string
	failCreate string
}

func (r *recorder) Build(rd io.Reader, _ bool) (kube.ResourceList, error) {
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, err
	}
	objs, err := manifest.Parse("test", data)
	if err != nil {
		return nil, err
	}
	var out kube.ResourceList
	for _, o := range objs {
		out = append(out, &resource.Info{Name: o.Object.GetName(), Namespace: "ns", Object: o.Object,
			Mapping: &meta.RESTMapping{GroupVersionKind: o.Object.GroupVersionKind(), Scope: meta.RESTScopeNamespace}})
	}
	return out, nil
}

func names(res kube.ResourceList) string {
	var n []string
	for _, i := range res {
		n = append(n, i.Name)
	}
	return strings.Join(n, ",")
}

func (r *recorder) Create(res kube.ResourceList, _ ...kube.ClientCreateOption) (*kube.Result, error) {
	*r.log = append(*r.log, "create "+names(res))
	if r.failCreate != "" && names(res) == r.failCreate {
		return nil, fmt.Errorf("%s refused", r.failCreate)
	}
	return &kube.Result{Created: res}, nil
}

func (r *recorder) Delete(res kube.ResourceList, _ metav1.DeletionPropagation) (*kube.Result, []error) {
	*r.log = append(*r.log, "delete "+names(res))
	return &kube.Result{Deleted: res}, nil
}

// GetWaiterWithOptions and GetWaiter log which way Helm asked for the
// waiter of its hooks, and with how many options.
func (r *recorder) GetWaiterWithOptions(ws kube.WaitStrategy, opts ...kube.WaitOption) (kube.Waiter, error) {
	*r.log = append(*r.log, fmt.Sprintf("waiter with %d option(s)", len(opts)))
	return r.FailingKubeClient.GetWaiterWithOptions(ws, opts...)
}

func (r *recorder) GetWaiter(ws kube.WaitStrategy) (kube.Waiter, error) {
	*r.log = append(*r.log, "waiter without options")
	return r.FailingKubeClient.GetWaiter(ws)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func hookManifest(kind, name, event string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: %s\nmetadata:\n  name: %s\n  annotations:\n    helm.sh/hook: %s\n", kind, name, event)
}

// fixture stores revision 1 of release hello, with a pre-delete and a
// post-delete hook, in status st.
func fixture(t *testing.T, st common.Status, failCreate string) (*action.Configuration, *[]string) {
	t.Helper()
	log := &[]string{}
	ac := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &recorder{FailingKubeClient: kubefake.FailingKubeClient{PrintingKubeClient: kubefake.PrintingKubeClient{Out: io.Discard}}, log: log, failCreate: failCreate},
		Capabilities: chartcommon.DefaultCapabilities,
	}
	rel := &rspb.Release{Name: "hello", Namespace: "ns", Version: 1,
		Info:     &rspb.Info{Status: st, LastDeployed: time.Now()},
		Chart:    &chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: "hello", Version: "0.1.0"}},
		Manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello-config\n",
		Hooks: []*rspb.Hook{
			{Name: "backup", Kind: "ConfigMap", Path: "hello/templates/pre.yaml", Manifest: hookManifest("ConfigMap", "backup", "pre-delete"), Events: []rspb.HookEvent{rspb.HookPreDelete}},
			{Name: "goodbye", Kind: "ConfigMap", Path: "hello/templates/post.yaml", Manifest: hookManifest("ConfigMap", "goodbye", "post-delete"), Events: []rspb.HookEvent{rspb.HookPostDelete}},
		}}
	if err := ac.Releases.Create(rel); err != nil {
		t.Fatal(err)
	}
	return ac, log
}

func TestUninstallRunsDeleteHooksAroundRemove(t *testing.T) {
	ac, log := fixture(t, common.StatusDeployed, "")
	removed := 0
	out, err := uninstall(context.Background(), ac, "hello", time.Minute, func() error { removed++; *log = append(*log, "remove"); return nil })
	if err != nil {
		t.Fatal(err)
	}
	pre, rm, post := slices.Index(*log, "create backup"), slices.Index(*log, "remove"), slices.Index(*log, "create goodbye")
	if removed != 1 || pre < 0 || rm < pre || post < rm {
		t.Fatalf("calls = %q (remove called %d times), want the pre-delete hook, remove once, then the post-delete hook", *log, removed)
	}
	if slices.ContainsFunc(*log, func(s string) bool { return strings.Contains(s, "hello-config") }) {
		t.Errorf("calls = %q: Helm itself touched the release's objects", *log)
	}
	if out.Hooks != 2 || out.Revisions != 1 || out.PostDelete != nil {
		t.Errorf("outcome = %+v, want 2 hooks run and 1 revision deleted", out)
	}
	if _, err := ac.Releases.History("hello"); !errors.Is(err, driver.ErrReleaseNotFound) {
		t.Errorf("records after uninstall: %v, want none", err)
	}
}

// A failing pre-delete hook deletes nothing; the retry runs it again.
func TestUninstallStopsOnAFailedPreDeleteHook(t *testing.T) {
	ac, log := fixture(t, common.StatusDeployed, "backup")
	removed := 0
	remove := func() error { removed++; return nil }
	_, err := uninstall(context.Background(), ac, "hello", time.Minute, remove)
	if !errors.Is(err, ErrPreDelete) || !strings.Contains(err.Error(), "backup refused") {
		t.Fatalf("error = %v, want the pre-delete hook's failure", err)
	}
	if removed != 0 || slices.Contains(*log, "create goodbye") {
		t.Fatalf("remove called %d times, calls %q: want nothing deleted and no post-delete hook", removed, *log)
	}
	if _, err := ac.Releases.History("hello"); err != nil {
		t.Fatalf("records after a failed pre-delete hook: %v, want them kept", err)
	}
	ac.KubeClient.(*recorder).failCreate = ""
	*log = nil
	if _, err := uninstall(context.Background(), ac, "hello", time.Minute, remove); err != nil || removed != 1 || !slices.Contains(*log, "create backup") {
		t.Fatalf("retry: error %v, remove called %d times, calls %q; want the hook run again, then remove", err, removed, *log)
	}
}

// A post-delete hook that fails leaves the objects deleted and the records
// gone; it is reported, not retried.
func TestUninstallReportsAFailedPostDeleteHook(t *testing.T) {
	ac, _ := fixture(t, common.StatusDeployed, "goodbye")
	removed := 0
	out, err := uninstall(context.Background(), ac, "hello", time.Minute, func() error { removed++; return nil })
	if err != nil || removed != 1 || out.PostDelete == nil || !strings.Contains(out.PostDelete.Error(), "goodbye refused") {
		t.Fatalf("error %v, remove called %d times, outcome %+v; want the post-delete failure reported after remove", err, removed, out)
	}
	if _, err := ac.Releases.History("hello"); !errors.Is(err, driver.ErrReleaseNotFound) {
		t.Errorf("records: %v, want none", err)
	}
}

// A release an earlier call left uninstalled (its records could not be
// deleted) does not run its hooks again.
func TestUninstallRetriedAfterTheHooksRan(t *testing.T) {
	ac, log := fixture(t, common.StatusUninstalled, "")
	removed := 0
	out, err := uninstall(context.Background(), ac, "hello", time.Minute, func() error { removed++; return nil })
	if err != nil || removed != 1 || len(*log) != 0 || out.Hooks != 0 || out.Revisions != 1 {
		t.Fatalf("error %v, remove called %d times, calls %q, outcome %+v; want remove once, no hook, the records gone", err, removed, *log, out)
	}
}

// A failing remove is returned as it is, and nothing after it runs; the
// retry does not run the pre-delete hook, which succeeded, again.
func TestUninstallReturnsRemovesError(t *testing.T) {
	ac, log := fixture(t, common.StatusDeployed, "")
	boom := errors.New("prune failed")
	if _, err := uninstall(context.Background(), ac, "hello", time.Minute, func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("error = %v, want the remove's", err)
	}
	if slices.Contains(*log, "create goodbye") {
		t.Errorf("calls = %q: the post-delete hook ran after a failed remove", *log)
	}
	*log = nil
	removed := 0
	out, err := uninstall(context.Background(), ac, "hello", time.Minute, func() error { removed++; *log = append(*log, "remove"); return nil })
	if err != nil || removed != 1 || slices.Contains(*log, "create backup") || !slices.Contains(*log, "create goodbye") {
		t.Fatalf("retry: error %v, calls %q; want remove, then only the post-delete hook", err, *log)
	}
	if out.Revisions != 1 {
		t.Errorf("retry: outcome %+v, want the record deleted", out)
	}
}

// A hook Helm stores as a List of objects is still a hook (matched by its
// manifest, not by parsing it): the prune runs once, for the release's
// objects, after it.
func TestUninstallTellsHooksByTheirManifest(t *testing.T) {
	ac, log := fixture(t, common.StatusDeployed, "")
	last, err := ac.Releases.Last("hello")
	if err != nil {
		t.Fatal(err)
	}
	rel := last.(*rspb.Release)
	rel.Hooks[0].Manifest = "apiVersion: v1\nkind: List\nmetadata:\n  annotations:\n    helm.sh/hook: pre-delete\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: backup\n"
	if err := ac.Releases.Update(rel); err != nil {
		t.Fatal(err)
	}
	if _, err := uninstall(context.Background(), ac, "hello", time.Minute, func() error { *log = append(*log, "remove"); return nil }); err != nil {
		t.Fatal(err)
	}
	if pre, rm := slices.Index(*log, "create backup"), slices.Index(*log, "remove"); pre < 0 || rm < pre {
		t.Fatalf("calls = %q, want the List hook created before the remove", *log)
	}
}

// The records forgotten are those of the uninstalled revision and older:
// one another install made meanwhile stays.
func TestUninstallKeepsANewerRevision(t *testing.T) {
	ac, _ := fixture(t, common.StatusDeployed, "")
	newer := &rspb.Release{Name: "hello", Namespace: "ns", Version: 2, Info: &rspb.Info{Status: common.StatusDeployed},
		Chart: &chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: "hello", Version: "0.1.0"}}}
	if _, err := uninstall(context.Background(), ac, "hello", time.Minute, func() error { return ac.Releases.Create(newer) }); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Releases.Get("hello", 2); err != nil {
		t.Errorf("revision 2, installed during the uninstall of revision 1: %v, want it kept", err)
	}
}

// A release a deleted Application's cleanup left uninstalling (it gave up
// on a failing pre-delete hook) or uninstalled is forgotten before the
// next install, which Helm would otherwise refuse; others are kept.
func TestClearUninstalledBeforeAnInstall(t *testing.T) {
	for _, st := range []common.Status{common.StatusUninstalling, common.StatusUninstalled, common.StatusDeployed, common.StatusFailed} {
		ac, _ := fixture(t, st, "")
		last, err := ac.Releases.Last("hello")
		if err != nil {
			t.Fatal(err)
		}
		// While an uninstall may be at work, it is left alone.
		last.(*rspb.Release).Info.Deleted = time.Now()
		must(t, ac.Releases.Update(last))
		if err := clearUninstalled(ac, "hello"); (err != nil) != (st == common.StatusUninstalling || st == common.StatusUninstalled) {
			t.Fatalf("last revision %s, uninstalled a moment ago: error %v", st, err)
		}
		last.(*rspb.Release).Info.Deleted = time.Now().Add(-uninstallWindow)
		must(t, ac.Releases.Update(last))
		if err := clearUninstalled(ac, "hello"); err != nil {
			t.Fatal(err)
		}
		_, err = ac.Releases.History("hello")
		gone := errors.Is(err, driver.ErrReleaseNotFound)
		if want := st == common.StatusUninstalling || st == common.StatusUninstalled; gone != want {
			t.Errorf("last revision %s: records gone = %v, want %v", st, gone, want)
		}
	}
}

// The hooks' waits get the caller's context as a wait option, through
// berth's wrapper of Helm's client (which would otherwise hide the
// client's option-taking method): a stopping agent ends them rather than
// waiting out the timeout.
func TestUninstallHandsItsContextToHelmsWaits(t *testing.T) {
	ac, log := fixture(t, common.StatusDeployed, "")
	if _, err := uninstall(context.Background(), ac, "hello", time.Minute, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n := slices.Index(*log, "waiter with 1 option(s)"); n < 0 || slices.Contains(*log, "waiter without options") {
		t.Errorf("calls = %q, want every hook's waiter asked for with the context option", *log)
	}
}
