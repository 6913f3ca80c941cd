package renderworker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/render"
)

// testWorkerEnv makes this test binary a worker: "serve" runs
// ServeProcess; "noisy" prints to stdout as a careless library would, then
// serves; "crash" reads a request and dies as a Go runtime's fatal error
// does; "env" dies printing its environment.
const testWorkerEnv = "BERTH_TEST_RENDER_WORKER"

func TestMain(m *testing.M) {
	switch os.Getenv(testWorkerEnv) {
	case "serve":
		if err := ServeProcess(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	case "noisy":
		out, err := protocolOutput()
		if err != nil {
			os.Exit(3)
		}
		fmt.Println("a library's line on stdout")
		if err := Serve(context.Background(), os.Stdin, out); err != nil {
			os.Exit(2)
		}
		os.Exit(0)
	case "env":
		_, _ = io.ReadFull(os.Stdin, make([]byte, 1))
		fmt.Fprint(os.Stderr, strings.Join(os.Environ(), " "))
		os.Exit(2)
	case "crash":
		_, _ = io.ReadFull(os.Stdin, make([]byte, 1))
		fmt.Fprint(os.Stderr, "runtime: goroutine stack exceeds 1000000000-byte limit\nfatal error: stack overflow\n\nruntime stack:\nruntime.throw(...)\n")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func pool(t testing.TB, mode string, o Options) *Pool {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o.Command = []string{exe}
	o.Env = []string{testWorkerEnv + "=" + mode}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func write(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const chartYAML = "apiVersion: v2\nname: demo\nversion: 0.1.0\n"

func chart(t testing.TB, templates map[string]string) string {
	t.Helper()
	files := map[string]string{"Chart.yaml": chartYAML, "values.yaml": "replicas: 2\nname: demo\n"}
	for name, tpl := range templates {
		files["templates/"+name] = tpl
	}
	return write(t, files)
}

type summary struct {
	Kind    render.Kind
	Objects []string
	Hooks   []string
	Values  map[string]any
}

func summarize(res *render.Result) summary {
	s := summary{Kind: res.Kind}
	for _, o := range res.Objects {
		b, _ := o.Object.MarshalJSON()
		s.Objects = append(s.Objects, o.Source.String()+" "+string(b))
	}
	for _, o := range res.HelmHooks {
		b, _ := o.Object.MarshalJSON()
		s.Hooks = append(s.Hooks, o.Source.String()+" "+string(b))
	}
	if res.Helm != nil {
		s.Values = res.Helm.Values
	}
	return s
}

// A worker renders what this process renders: objects, sources, hooks,
// a chart's values for its install, Kustomize overlays; and it keeps
// serving render after render.
func TestRenderIsTheSameAsInProcess(t *testing.T) {
	p := pool(t, "serve", Options{Workers: 1})
	helm := chart(t, map[string]string{
		"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Values.name }}}\ndata: {replicas: {{ .Values.replicas | quote }}, upgrade: {{ .Release.IsUpgrade | quote }}}\n",
		"deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: {{ .Values.replicas }}\n" +
			"  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n",
		"hook.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations: {helm.sh/hook: pre-upgrade}\nspec:\n  template:\n    spec: {restartPolicy: Never, containers: [{name: m, image: busybox}]}\n",
	})
	kust := write(t, map[string]string{
		"base/kustomization.yaml":          "resources: [cm.yaml]\n",
		"base/cm.yaml":                     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {k: v}\n",
		"overlays/prod/kustomization.yaml": "resources: [../../base]\nnameSuffix: -prod\n",
	})
	cases := []struct {
		name string
		dir  string
		opts render.Options
	}{
		{"helm", helm, render.Options{ReleaseName: "demo", Namespace: "apps", Values: map[string]any{"replicas": 3}, IsUpgrade: true}},
		{"helm again", helm, render.Options{ReleaseName: "demo", Namespace: "apps", KubeVersion: "v1.30.0"}},
		{"kustomize", filepath.Join(kust, "overlays/prod"), render.Options{Root: kust}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, err := render.Render(context.Background(), c.dir, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Render(context.Background(), c.dir, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(summarize(want), summarize(got)); d != "" {
				t.Errorf("worker's render (-in process +worker):\n%s", d)
			}
		})
	}
}

// `lookup` reads through the Pool: the caller's function answers, whole
// numbers come back as integers (as from Helm's own lookup), and its error
// fails the render with its message.
func TestLookupIsServedByTheCaller(t *testing.T) {
	p := pool(t, "serve", Options{Workers: 1})
	dir := chart(t, map[string]string{"cm.yaml": `{{- $d := lookup "apps/v1" "Deployment" "apps" "web" }}
apiVersion: v1
kind: ConfigMap
metadata: {name: seen}
data:
  replicas: {{ if eq $d.spec.replicas 4 }}"four"{{ else }}{{ $d.spec.replicas | quote }}{{ end }}
  missing: {{ lookup "v1" "Secret" "apps" "none" | len | quote }}
`})
	var mu sync.Mutex
	var calls []string
	opts := render.Options{ReleaseName: "demo", Namespace: "apps", Lookup: func(apiVersion, kind, namespace, name string) (map[string]any, error) {
		mu.Lock()
		calls = append(calls, strings.Join([]string{apiVersion, kind, namespace, name}, " "))
		mu.Unlock()
		if kind == "Deployment" {
			return map[string]any{"spec": map[string]any{"replicas": int64(4)}}, nil
		}
		return map[string]any{}, nil
	}}
	res, err := p.Render(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	data := res.Objects[0].Object.Object["data"]
	if d := cmp.Diff(map[string]any{"replicas": "four", "missing": "0"}, data); d != "" {
		t.Errorf("data (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"apps/v1 Deployment apps web", "v1 Secret apps none"}, calls); d != "" {
		t.Errorf("lookups (-want +got):\n%s", d)
	}

	opts.Lookup = func(string, string, string, string) (map[string]any, error) {
		return nil, errors.New("lookup apps/v1 Deployment apps/web as system:serviceaccount:apps:deployer: forbidden")
	}
	_, err = p.Render(context.Background(), dir, opts)
	if err == nil || !strings.Contains(err.Error(), "as system:serviceaccount:apps:deployer: forbidden") {
		t.Errorf("render with a refused lookup: %v, want the lookup's error", err)
	}
}

// A render's own error keeps the file it names, and the worker serves on.
func TestRenderErrorKeepsItsFile(t *testing.T) {
	p := pool(t, "serve", Options{Workers: 1})
	dir := write(t, map[string]string{"Chart.yaml": chartYAML, "values.yaml": "a: 1\n", "values-prod.yaml": "a: [1\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"})
	_, err := p.Render(context.Background(), dir, render.Options{ReleaseName: "x", Environment: "prod"})
	var me *manifest.Error
	if !errors.As(err, &me) || me.Source.File != "values-prod.yaml" || !strings.Contains(err.Error(), "invalid values") {
		t.Fatalf("error %v (%T), want a manifest error naming values-prod.yaml", err, err)
	}
	if _, err := p.Render(context.Background(), dir, render.Options{ReleaseName: "x"}); err != nil {
		t.Fatalf("next render: %v", err)
	}
}

type stops struct {
	mu      sync.Mutex
	reasons []string
}

func (s *stops) add(r string) { s.mu.Lock(); s.reasons = append(s.reasons, r); s.mu.Unlock() }

func (s *stops) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reasons...)
}

// A chart that takes more memory than the limit is stopped with an error
// that says so; the next render gets a new worker.
func TestMemoryLimitStopsTheRender(t *testing.T) {
	var s stops
	p := pool(t, "serve", Options{Workers: 1, MemoryLimit: 64 << 20, Stopped: s.add})
	bomb := chart(t, map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  n: \"{{ range until 200000000 }}x{{ end }}\"\n"})
	_, err := p.Render(context.Background(), bomb, render.Options{ReleaseName: "bomb"})
	var le *LimitError
	if !errors.As(err, &le) || le.Reason != "memory" || !strings.Contains(err.Error(), "more than 64 MiB of memory") {
		t.Fatalf("error %v, want the memory limit", err)
	}
	fine := chart(t, map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n"})
	if _, err := p.Render(context.Background(), fine, render.Options{ReleaseName: "fine"}); err != nil {
		t.Fatalf("render after the stop: %v", err)
	}
	// One allocation of 1 GB, made at once, faster than the watchdog
	// looks: the worker's data limit stops it.
	one := chart(t, map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\ndata:\n  n: {{ repeat 1000000000 \"x\" | len | quote }}\n"})
	if _, err := p.Render(context.Background(), one, render.Options{ReleaseName: "one"}); !errors.As(err, &le) || le.Reason != "memory" {
		t.Fatalf("one large allocation: %v, want the memory limit", err)
	}
	if d := cmp.Diff([]string{"memory", "memory"}, s.get()); d != "" {
		t.Errorf("stops (-want +got):\n%s", d)
	}
}

// A render that runs past the timeout is stopped; one whose caller gives
// up is stopped with the caller's error.
func TestTimeoutStopsTheRender(t *testing.T) {
	var s stops
	p := pool(t, "serve", Options{Workers: 1, Timeout: 500 * time.Millisecond, Stopped: s.add})
	slow := chart(t, map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: slow}\n{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}\n"})
	_, err := p.Render(context.Background(), slow, render.Options{ReleaseName: "slow"})
	var le *LimitError
	if !errors.As(err, &le) || le.Reason != "timeout" || !strings.Contains(err.Error(), "longer than 500ms") {
		t.Fatalf("error %v, want the timeout", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := p.Render(ctx, slow, render.Options{ReleaseName: "slow"}); !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &le) {
		t.Fatalf("error %v, want the caller's deadline", err)
	}
	if d := cmp.Diff([]string{"timeout"}, s.get()); d != "" {
		t.Errorf("stops (-want +got):\n%s", d)
	}
}

// The time limit counts the worker's own time, not the lookups the caller
// answers.
func TestTimeoutLeavesLookupsOut(t *testing.T) {
	p := pool(t, "serve", Options{Workers: 1, Timeout: 300 * time.Millisecond})
	dir := chart(t, map[string]string{"cm.yaml": "{{ $a := lookup \"v1\" \"ConfigMap\" \"x\" \"a\" }}{{ $b := lookup \"v1\" \"ConfigMap\" \"x\" \"b\" }}apiVersion: v1\nkind: ConfigMap\nmetadata: {name: slow-api}\n"})
	slowAPI := func(string, string, string, string) (map[string]any, error) {
		time.Sleep(400 * time.Millisecond)
		return map[string]any{}, nil
	}
	if _, err := p.Render(context.Background(), dir, render.Options{ReleaseName: "x", Lookup: slowAPI}); err != nil {
		t.Fatalf("render with 800 ms of lookups under a 300 ms limit: %v", err)
	}
}

// A worker that dies while idle (the kernel's out-of-memory killer) is
// replaced, and the next render does not fail for it.
func TestWorkerDeadWhileIdleIsReplaced(t *testing.T) {
	var s stops
	p := pool(t, "serve", Options{Workers: 1, Stopped: s.add})
	dir := chart(t, map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"})
	if _, err := p.Render(context.Background(), dir, render.Options{ReleaseName: "x"}); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	w := p.idle[0]
	p.mu.Unlock()
	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-w.exited
	if _, err := p.Render(context.Background(), dir, render.Options{ReleaseName: "x"}); err != nil {
		t.Fatalf("render after the idle worker died: %v", err)
	}
	if got := s.get(); len(got) != 0 {
		t.Errorf("stops %v, want none", got)
	}
	p.Close()
	if _, err := p.Render(context.Background(), dir, render.Options{ReleaseName: "x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("render after Close: %v, want ErrClosed", err)
	}
}

// What a library prints on stdout does not reach the protocol.
func TestStdoutNoiseStaysOutOfTheProtocol(t *testing.T) {
	p := pool(t, "noisy", Options{Workers: 1})
	dir := chart(t, map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"})
	if _, err := p.Render(context.Background(), dir, render.Options{ReleaseName: "x"}); err != nil {
		t.Fatalf("render by a worker that printed on stdout: %v", err)
	}
}

// A worker gets what a process needs of the agent's environment, its
// limits, and nothing else.
func TestWorkerEnvironment(t *testing.T) {
	t.Setenv("BERTH_TEST_AGENT_SECRET", "s3cret")
	p := pool(t, "env", Options{Workers: 1, MemoryLimit: 100 << 20})
	_, err := p.Render(context.Background(), chart(t, nil), render.Options{ReleaseName: "x"})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "GOMEMLIMIT=78643200") ||
		!strings.Contains(err.Error(), DataLimitEnv+"=157286400") || !strings.Contains(err.Error(), "PATH=") {
		t.Fatalf("worker environment: %v", err)
	}
}

// A Kustomize diamond (each level loads the one below twice, under two
// prefixes: 2^24 loads) is stopped too.
func TestKustomizeDiamondIsStopped(t *testing.T) {
	files := map[string]string{
		"l0/a/kustomization.yaml": "resources: [cm.yaml]\nnamePrefix: a-\n", "l0/a/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
		"l0/b/kustomization.yaml": "resources: [cm.yaml]\nnamePrefix: b-\n", "l0/b/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
	}
	const depth = 24
	for i := 1; i <= depth; i++ {
		for _, side := range []string{"a", "b"} {
			files[fmt.Sprintf("l%d/%s/kustomization.yaml", i, side)] = fmt.Sprintf("resources: [../../l%d/a, ../../l%d/b]\nnamePrefix: %s-\n", i-1, i-1, side)
		}
	}
	root := write(t, files)
	var s stops
	p := pool(t, "serve", Options{Workers: 1, Timeout: time.Second, MemoryLimit: 64 << 20, Stopped: s.add})
	_, err := p.Render(context.Background(), filepath.Join(root, fmt.Sprintf("l%d/a", depth)), render.Options{Root: root})
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("error %v, want a limit", err)
	}
	if got := s.get(); len(got) != 1 || got[0] != le.Reason {
		t.Errorf("stops %v, want one for %s", got, le.Reason)
	}
}

// A render whose answer is larger than allowed is refused, not read.
func TestResultLimit(t *testing.T) {
	p := pool(t, "serve", Options{Workers: 1, MaxResultBytes: 1 << 20})
	big := chart(t, map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  n: {{ repeat 2000000 \"x\" | quote }}\n"})
	_, err := p.Render(context.Background(), big, render.Options{ReleaseName: "big"})
	var le *LimitError
	if !errors.As(err, &le) || le.Reason != "size" || !strings.Contains(err.Error(), "returned more than 1 MiB") {
		t.Fatalf("error %v, want the answer refused", err)
	}
}

// A worker that dies is reported with the first lines it wrote, not its
// stack.
func TestCrashIsReported(t *testing.T) {
	var s stops
	p := pool(t, "crash", Options{Workers: 1, Stopped: s.add})
	_, err := p.Render(context.Background(), chart(t, nil), render.Options{ReleaseName: "x"})
	if err == nil || !strings.Contains(err.Error(), "exit status 2") || !strings.Contains(err.Error(), "fatal error: stack overflow") || strings.Contains(err.Error(), "runtime.throw") {
		t.Fatalf("error %v, want the exit and the fatal error without the stack", err)
	}
	if d := cmp.Diff([]string{"crash"}, s.get()); d != "" {
		t.Errorf("stops (-want +got):\n%s", d)
	}
}
