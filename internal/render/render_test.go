package render

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: NAME\ndata:\n  k: v\n"

func names(res *Result) []string {
	var out []string
	for _, o := range res.Objects {
		out = append(out, o.Object.GetKind()+"/"+o.Object.GetName())
	}
	return out
}

func TestRender(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		dir     string
		opts    Options
		kind    Kind
		want    []string
		wantErr string
	}{
		{
			name:  "plain recursive",
			files: map[string]string{"a.yaml": strings.Replace(cm, "NAME", "a", 1), "sub/b.yml": strings.Replace(cm, "NAME", "b", 1), "README.md": "x"},
			kind:  Plain, want: []string{"ConfigMap/a", "ConfigMap/b"},
		},
		{
			name: "kustomize overlay",
			files: map[string]string{
				"base/kustomization.yaml":          "resources: [cm.yaml]\n",
				"base/cm.yaml":                     strings.Replace(cm, "NAME", "settings", 1),
				"overlays/prod/kustomization.yaml": "resources: [../../base]\nnameSuffix: -prod\n",
			},
			dir: "overlays/prod", kind: Kustomize, want: []string{"ConfigMap/settings-prod"},
		},
		{
			name:    "kustomize remote base refused",
			files:   map[string]string{"kustomization.yaml": "resources:\n- https://github.com/example/repo//base?ref=v1\n"},
			wantErr: "remote base",
		},
		{
			name: "helm with environment values",
			files: map[string]string{
				"Chart.yaml":        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
				"values.yaml":       "env: default\n",
				"values-prod.yaml":  "env: prod\n",
				"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Values.env }}\n",
			},
			opts: Options{ReleaseName: "r", Environment: "prod", Namespace: "ns"},
			kind: Helm, want: []string{"ConfigMap/r-prod"},
		},
		{
			name: "helm inline values win",
			files: map[string]string{
				"Chart.yaml":        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
				"values.yaml":       "env: default\n",
				"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x-{{ .Values.env }}\n",
			},
			opts: Options{ReleaseName: "r", Values: map[string]any{"env": "inline"}},
			kind: Helm, want: []string{"ConfigMap/x-inline"},
		},
		{
			name: "helm template error names the chart",
			files: map[string]string{
				"Chart.yaml":        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
				"templates/cm.yaml": "{{ .Values.missing.field }}\n",
			},
			opts: Options{ReleaseName: "r"}, wantErr: "Chart.yaml: helm template",
		},
		{
			name:    "duplicate object",
			files:   map[string]string{"a.yaml": strings.Replace(cm, "NAME", "a", 1), "b.yaml": strings.Replace(cm, "NAME", "a", 1)},
			wantErr: "defined twice",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, tt.files)
			res, err := Render(context.Background(), filepath.Join(root, tt.dir), tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Kind != tt.kind {
				t.Errorf("kind = %s, want %s", res.Kind, tt.kind)
			}
			if diff := cmp.Diff(tt.want, names(res)); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

// Every kustomization kustomize would load is checked, through every
// field that names a path: remote bases reached through a local base,
// files kustomize would download, scp-style Git locations, and (with Root
// set) directories outside the repository.
func TestKustomizeRefusesRemoteAndOutside(t *testing.T) {
	// What a cloud's metadata service would be: nothing may ask it.
	var asked atomic.Int32
	leak := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		asked.Add(1)
		_, _ = w.Write([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leaked}\n"))
	}))
	t.Cleanup(leak.Close)
	t.Cleanup(func() {
		if n := asked.Load(); n > 0 {
			t.Errorf("the render asked the server %d time(s)", n)
		}
	})
	outside := t.TempDir()
	write(t, outside, map[string]string{"kustomization.yaml": "resources: [cm.yaml]\n", "cm.yaml": strings.Replace(cm, "NAME", "stolen", 1)})
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"remote base behind a local base", map[string]string{
			"base/kustomization.yaml":   "resources:\n- https://github.com/example/repo//base?ref=v1\n",
			"apps/x/kustomization.yaml": "resources: [../../base]\n",
		}, "remote base"},
		{"patch over HTTP", map[string]string{
			"apps/x/kustomization.yaml": "resources: [cm.yaml]\npatches:\n- path: http://169.254.169.254/latest/meta-data\n",
			"apps/x/cm.yaml":            strings.Replace(cm, "NAME", "a", 1),
		}, "downloaded"},
		{"generator file over HTTP", map[string]string{
			"apps/x/kustomization.yaml": "configMapGenerator:\n- name: c\n  files: [k=https://internal.example/secret]\n",
		}, "downloaded"},
		{"scp-style Git base", map[string]string{
			"apps/x/kustomization.yaml": "resources: [deploy@evil.example:org/repo]\n",
		}, "remote base"},
		{"base outside the repository", map[string]string{
			"apps/x/kustomization.yaml": "resources: [" + outside + "]\n",
		}, "leaves the repository"},
		// Plugin configs name paths of their own, and kustomize loads a
		// directory of them as a kustomization.
		{"generator config fetching a file", map[string]string{
			"apps/x/kustomization.yaml": "generators: [gen.yaml]\n",
			"apps/x/gen.yaml":           "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: leak}\nfiles: [k=http://169.254.169.254/latest/meta-data/]\n",
		}, "downloaded"},
		{"generator directory with a remote base", map[string]string{
			"apps/x/kustomization.yaml":     "generators: [gen]\n",
			"apps/x/gen/kustomization.yaml": "resources: [https://github.com/example/repo//base]\n",
		}, "remote base"},
		// kustomize builds a directory of plugin configs and loads its
		// output as configs: a file its resources (or its bases') name
		// fetches like one named at the top.
		{"generator directory whose resource fetches a file", map[string]string{
			"apps/x/kustomization.yaml":     "generators: [gen]\n",
			"apps/x/gen/kustomization.yaml": "resources: [g.yaml]\n",
			"apps/x/gen/g.yaml":             "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: leak}\nfiles: [k=" + leak.URL + "/latest/meta-data/]\n",
		}, "downloaded"},
		{"generator directory whose base's resource fetches a file", map[string]string{
			"apps/x/kustomization.yaml":      "transformers: [gen]\n",
			"apps/x/gen/kustomization.yaml":  "resources: [../base]\n",
			"apps/x/base/kustomization.yaml": "resources: [p.yaml]\n",
			"apps/x/base/p.yaml":             "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: " + leak.URL + "/patch.yaml\n",
		}, "downloaded"},
		{"inline transformer fetching a patch", map[string]string{
			"apps/x/kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- |-\n  apiVersion: builtin\n  kind: PatchTransformer\n  metadata: {name: p}\n  path: https://internal.example/patch.yaml\n",
			"apps/x/cm.yaml":            strings.Replace(cm, "NAME", "a", 1),
		}, "downloaded"},
		{"Git host in capitals", map[string]string{
			"apps/x/kustomization.yaml": "resources: [GitHub.com/org/repo]\n",
		}, "remote base"},
		{"Git host with a colon", map[string]string{
			"apps/x/kustomization.yaml": "resources: [github.com:org/repo]\n",
		}, "remote base"},
		{"base that is not there", map[string]string{
			"apps/x/kustomization.yaml": "resources: [example.org/org/repo]\n",
		}, "does not exist in the repository"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, tt.files)
			_, err := Render(context.Background(), filepath.Join(root, "apps/x"), Options{Root: root})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	t.Run("relative path out of the repository", func(t *testing.T) {
		parent := t.TempDir()
		root := filepath.Join(parent, "repo")
		write(t, parent, map[string]string{"other/kustomization.yaml": "resources: [cm.yaml]\n", "other/cm.yaml": strings.Replace(cm, "NAME", "o", 1)})
		write(t, root, map[string]string{"apps/x/kustomization.yaml": "resources: [../../../other]\n"})
		if _, err := Render(context.Background(), filepath.Join(root, "apps/x"), Options{Root: root}); err == nil || !strings.Contains(err.Error(), "leaves the repository") {
			t.Fatalf("err = %v, want the base refused", err)
		}
	})
	t.Run("relative path of a base reached through a symlink", func(t *testing.T) {
		parent := t.TempDir()
		root := filepath.Join(parent, "repo")
		write(t, parent, map[string]string{"other/kustomization.yaml": "resources: [cm.yaml]\n", "other/cm.yaml": strings.Replace(cm, "NAME", "o", 1)})
		write(t, root, map[string]string{
			"a/kustomization.yaml":      "resources: [../../other]\n", // from a: the parent's other
			"apps/x/kustomization.yaml": "resources: [../../l1/l2/link]\n",
		})
		if err := os.MkdirAll(filepath.Join(root, "l1/l2"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../a", filepath.Join(root, "l1/l2/link")); err != nil {
			t.Fatal(err)
		}
		if _, err := Render(context.Background(), filepath.Join(root, "apps/x"), Options{Root: root}); err == nil || !strings.Contains(err.Error(), "leaves the repository") {
			t.Fatalf("err = %v, want the base's base refused", err)
		}
	})
	t.Run("overlay inside the repository", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, map[string]string{
			"base/kustomization.yaml":   "resources: [cm.yaml]\n",
			"base/cm.yaml":              strings.Replace(cm, "NAME", "settings", 1),
			"apps/x/kustomization.yaml": "resources: [../../base]\nconfigMapGenerator:\n- name: g\n  files: [k=data.txt]\n",
			"apps/x/data.txt":           "v\n",
		})
		res, err := Render(context.Background(), filepath.Join(root, "apps/x"), Options{Root: root})
		if err != nil || len(res.Objects) != 2 {
			t.Fatalf("overlay = %v, %v", res, err)
		}
	})
}

func TestJoinRefusesEscapes(t *testing.T) {
	for _, p := range []string{"../x", "a/../../x", ".."} {
		if _, err := Join("/repo", p); !errors.Is(err, ErrPathEscapes) {
			t.Errorf("Join(%q) = %v, want ErrPathEscapes", p, err)
		}
	}
	got, err := Join("/repo", "/apps/web/")
	if err != nil || got != "/repo/apps/web" {
		t.Errorf("Join(/apps/web/) = %q, %v", got, err)
	}
}

// A chart's symlinks must resolve inside the repository (or, without one,
// the chart): Helm's loader follows them, and {{ .Files.Get }} would print
// whatever they point at.
func TestHelmAPIVersions(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
		"templates/cm.yaml": "{{ if .Capabilities.APIVersions.Has \"example.test/v1/Widget\" }}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: widgets\n  annotations: {kube: {{ .Capabilities.KubeVersion.Version | quote }}}\n{{ end }}",
	})
	for _, tc := range []struct {
		opts Options
		want int
	}{
		{Options{ReleaseName: "r"}, 0},
		{Options{ReleaseName: "r", KubeVersion: "v1.31.2", APIVersions: []string{"example.test/v1", "example.test/v1/Widget"}}, 1},
	} {
		res, err := Render(context.Background(), dir, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Objects) != tc.want {
			t.Fatalf("%+v: %d objects, want %d", tc.opts, len(res.Objects), tc.want)
		}
		if tc.want == 1 && res.Objects[0].Object.GetAnnotations()["kube"] != "v1.31.2" {
			t.Errorf("kube version = %v", res.Objects[0].Object.GetAnnotations())
		}
	}
}

// A chart keeps a generated password across upgrades with `lookup`: the
// render reads through Options.Lookup, and sees an upgrade when told.
func TestHelmLookupAndIsUpgrade(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
		"templates/secret.yaml": `{{- $s := lookup "v1" "Secret" .Release.Namespace "pw" }}
apiVersion: v1
kind: Secret
metadata:
  name: pw
  annotations: {upgrade: {{ .Release.IsUpgrade | quote }}}
data:
  password: {{ if $s }}{{ $s.data.password }}{{ else }}{{ randAlphaNum 16 | b64enc }}{{ end }}
`,
	})
	password := func(res *Result) string {
		v, _, _ := unstructured.NestedString(res.Objects[0].Object.Object, "data", "password")
		return v
	}
	var calls []string
	res, err := Render(context.Background(), dir, Options{ReleaseName: "r", Namespace: "apps", Lookup: func(apiVersion, kind, namespace, name string) (map[string]any, error) {
		calls = append(calls, strings.Join([]string{apiVersion, kind, namespace, name}, " "))
		return map[string]any{"data": map[string]any{"password": "a2VwdA=="}}, nil
	}, IsUpgrade: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := password(res); got != "a2VwdA==" || len(calls) != 1 || calls[0] != "v1 Secret apps pw" {
		t.Errorf("password %q after lookups %q, want the one the lookup found", got, calls)
	}
	if up := res.Objects[0].Object.GetAnnotations()["upgrade"]; up != "true" {
		t.Errorf(".Release.IsUpgrade = %q, want true", up)
	}

	// Without a Lookup (berth render, helm template): nothing is found.
	res, err = Render(context.Background(), dir, Options{ReleaseName: "r", Namespace: "apps"})
	if err != nil {
		t.Fatal(err)
	}
	if got := password(res); got == "a2VwdA==" || got == "" || res.Objects[0].Object.GetAnnotations()["upgrade"] != "false" {
		t.Errorf("password %q, annotations %v: want a generated one, on install", got, res.Objects[0].Object.GetAnnotations())
	}

	// A failed read fails the render, naming the chart.
	_, err = Render(context.Background(), dir, Options{ReleaseName: "r", Namespace: "apps", Lookup: func(string, string, string, string) (map[string]any, error) {
		return nil, errors.New(`secrets "pw" is forbidden`)
	}})
	if err == nil || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "secret.yaml") {
		t.Errorf("err = %v, want the lookup's error and the template", err)
	}
}

// A chart's hooks come with the render for the policy gate, except test
// hooks: berth never runs helm test (helm create's test pod uses busybox,
// untagged).
func TestHelmHooks(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n",
		"templates/job.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations: {helm.sh/hook: pre-upgrade}\n" +
			"spec: {template: {spec: {restartPolicy: Never, containers: [{name: m, image: example.test/m:1}]}}}\n",
		"templates/tests/conn.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: test-conn\n  annotations: {helm.sh/hook: test}\n" +
			"spec: {restartPolicy: Never, containers: [{name: wget, image: busybox}]}\n",
	})
	res, err := Render(context.Background(), dir, Options{ReleaseName: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Objects) != 1 || len(res.HelmHooks) != 1 || res.HelmHooks[0].Object.GetName() != "migrate" || res.HelmHooks[0].Source.File != "c/templates/job.yaml" {
		t.Errorf("objects %d, hooks %+v, want the ConfigMap and the pre-upgrade Job", len(res.Objects), res.HelmHooks)
	}
}

// A chart's values.schema.json may refer only within itself: Helm's
// validator would load any other reference, a file on the agent's disk or
// any address the agent reaches, and print what it found in its error.
// A subchart's schema is checked too; references within a schema and the
// drafts Helm knows are kept.
func TestHelmSchemaMayNotReferElsewhere(t *testing.T) {
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		asked.Add(1)
		_, _ = w.Write([]byte(`{"type":"object"}`))
	}))
	t.Cleanup(srv.Close)
	outside := filepath.Join(t.TempDir(), "defs.json")
	if err := os.WriteFile(outside, []byte(`{"type":"string"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{
		"chart/Chart.yaml":        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
		"chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: {{ .Values.k | quote }}\n",
		"chart/values.yaml":       "k: v\n",
	}
	render := func(extra map[string]string) error {
		root := t.TempDir()
		write(t, root, base)
		write(t, root, extra)
		_, err := Render(context.Background(), filepath.Join(root, "chart"), Options{ReleaseName: "r", Namespace: "default", Root: root})
		return err
	}
	for name, tt := range map[string]struct {
		files   map[string]string
		wantErr string
	}{
		"a URL":              {map[string]string{"chart/values.schema.json": `{"properties":{"k":{"$ref":"` + srv.URL + `/s.json"}}}`}, "refers to another document"},
		"a local file":       {map[string]string{"chart/values.schema.json": `{"$ref":"file://` + outside + `"}`}, "refers to another document"},
		"a relative file":    {map[string]string{"chart/values.schema.json": `{"allOf":[{"$ref":"defs.json"}]}`}, "refers to another document"},
		"an unknown $schema": {map[string]string{"chart/values.schema.json": `{"$schema":"` + srv.URL + `/meta","type":"object"}`}, "$schema"},
		"a subchart's": {map[string]string{
			"chart/charts/sub/Chart.yaml":         "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
			"chart/charts/sub/values.schema.json": `{"$dynamicRef":"` + srv.URL + `/d.json"}`,
		}, "charts/sub/values.schema.json"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := render(tt.files); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if n := asked.Load(); n > 0 {
		t.Errorf("the render asked the server %d time(s)", n)
	}
	// What charts use is kept, and still validates the values.
	local := `{"$schema":"https://json-schema.org/draft/2020-12/schema#","$defs":{"s":{"type":"string"}},"properties":{"k":{"$ref":"#/$defs/s"}}}`
	if err := render(map[string]string{"chart/values.schema.json": local}); err != nil {
		t.Fatalf("a schema referring within itself: %v", err)
	}
	if err := render(map[string]string{"chart/values.schema.json": local, "chart/values.yaml": "k: 3\n"}); err == nil || !strings.Contains(err.Error(), "string") {
		t.Fatalf("values against a schema referring within itself: err = %v, want the type error", err)
	}
}

func TestHelmChartSymlinksStayInside(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secret, []byte("s3cret-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	chart := map[string]string{
		"chart/Chart.yaml":        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
		"chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: {{ .Files.Get \"files/k\" | quote }}\n",
		"shared/k":                "shared-value",
		"chart/files/.keep":       "",
		"chart/values.yaml":       "{}\n",
	}
	setup := func(t *testing.T, target string) string {
		root := t.TempDir()
		write(t, root, chart)
		if err := os.Symlink(target, filepath.Join(root, "chart/files/k")); err != nil {
			t.Fatal(err)
		}
		return root
	}
	opts := Options{ReleaseName: "r", Namespace: "default"}

	root := setup(t, secret)
	o := opts
	o.Root = root
	if _, err := Render(context.Background(), filepath.Join(root, "chart"), o); err == nil || !strings.Contains(err.Error(), "outside the repository") {
		t.Fatalf("symlink to a file outside the repository: err = %v, want refused", err)
	}
	if _, err := Render(context.Background(), filepath.Join(root, "chart"), opts); err == nil {
		t.Fatal("without a root, a symlink leaving the chart was followed")
	}

	// A linked directory would hide the links inside it (and one to an
	// ancestor makes Helm walk forever): refused, even inside.
	root = setup(t, "../../shared")
	o.Root = root
	if _, err := Render(context.Background(), filepath.Join(root, "chart"), o); err == nil || !strings.Contains(err.Error(), "symlinked directories") {
		t.Fatalf("symlink to a directory: err = %v, want refused", err)
	}
	// The chart itself reached through a link out of the repository.
	root = setup(t, "../../shared/k")
	elsewhere := t.TempDir()
	write(t, elsewhere, chart)
	if err := os.Symlink(filepath.Join(elsewhere, "chart"), filepath.Join(root, "linked")); err != nil {
		t.Fatal(err)
	}
	o.Root = root
	if _, err := Render(context.Background(), filepath.Join(root, "linked"), o); err == nil || !strings.Contains(err.Error(), "outside the repository") {
		t.Fatalf("chart directory linked from outside: err = %v, want refused", err)
	}

	root = setup(t, "../../shared/k")
	o.Root = root
	res, err := Render(context.Background(), filepath.Join(root, "chart"), o)
	if err != nil {
		t.Fatalf("symlink inside the repository: %v", err)
	}
	if got, _, _ := unstructuredString(res, "data", "k"); got != "shared-value" {
		t.Errorf("data.k = %q, want the linked file's content", got)
	}
}

func unstructuredString(res *Result, fields ...string) (string, bool, error) {
	if len(res.Objects) != 1 {
		return "", false, errors.New("want one object")
	}
	m := res.Objects[0].Object.Object
	for _, f := range fields[:len(fields)-1] {
		m, _ = m[f].(map[string]any)
	}
	s, ok := m[fields[len(fields)-1]].(string)
	return s, ok, nil
}

func TestRepoRoot(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{".git/HEAD": "ref: refs/heads/main\n", "apps/x/a.yaml": cm})
	if got := RepoRoot(filepath.Join(root, "apps/x")); got != root {
		t.Errorf("RepoRoot = %q, want %q", got, root)
	}
	// A worktree or submodule has a .git file, not a directory.
	sub := filepath.Join(root, "vendor/sub")
	write(t, sub, map[string]string{".git": "gitdir: ../../.git/modules/sub\n", "x/a.yaml": cm})
	if got := RepoRoot(filepath.Join(sub, "x")); got != sub {
		t.Errorf("RepoRoot in a submodule = %q, want %q", got, sub)
	}
	// A path through a link is judged where it leads.
	outside := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "apps"), filepath.Join(outside, "apps")); err != nil {
		t.Fatal(err)
	}
	if got := RepoRoot(filepath.Join(outside, "apps/x")); got != root {
		t.Errorf("RepoRoot through a link = %q, want %q", got, root)
	}
}

// Helm writes a crds/ file whole under one "# Source:" comment, with its
// own "---" separators: every document in it is of that file.
func TestParseHelmManifestKeepsTheSourceAcrossAFilesDocuments(t *testing.T) {
	crd := func(name string) string {
		return "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: " + name + "\n"
	}
	m := "---\n# Source: app/charts/db/crds/all.yaml\n# generated\n---\n" + crd("a.example.test") + "---\n" + crd("b.example.test") +
		"---\n# Source: app/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
	objs, err := ParseHelmManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Object.GetName()+"@"+o.Source.File)
	}
	want := "a.example.test@app/charts/db/crds/all.yaml b.example.test@app/charts/db/crds/all.yaml c@app/templates/cm.yaml"
	if strings.Join(got, " ") != want {
		t.Errorf("sources = %v, want %s", got, want)
	}
}
