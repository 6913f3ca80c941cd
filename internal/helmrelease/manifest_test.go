package helmrelease

import (
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/engine"

	"github.com/berth-dev/berth/internal/manifest"
)

// Literal's chart renders, whatever the values and the revision, to the
// objects and hooks it was given, each in the file it came from (a
// subchart's too); "{{" in a value stays text; the CRDs of crds/
// directories, the subchart's too, are left to Helm's own CRD step; the
// original chart is not changed.
func TestLiteral(t *testing.T) {
	parse := func(file, y string) manifest.Object {
		objs, err := manifest.Parse(file, []byte(y))
		if err != nil || len(objs) != 1 {
			t.Fatalf("parse: %v", err)
		}
		return objs[0]
	}
	crd := "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.test\n"
	objs := []manifest.Object{
		parse("app/crds/widgets.yaml", crd),
		parse("app/charts/db/crds/tables.yaml", strings.Replace(crd, "widgets", "tables", 1)),
		parse("app/templates/crds/gadgets.yaml", strings.Replace(crd, "widgets", "gadgets", 1)),
		parse("app/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {alert: '{{ $labels.instance }} is down'}\n"),
		parse("app/charts/db/templates/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\n"),
	}
	hooks := []manifest.Object{
		parse("app/templates/hook.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hook-1\n  annotations: {helm.sh/hook: post-upgrade}\n"),
	}
	sub := &chartv2.Chart{Metadata: &chartv2.Metadata{APIVersion: "v2", Name: "db", Version: "0.1.0"},
		Templates: []*common.File{{Name: "templates/svc.yaml", Data: []byte("{{ fail \"the subchart rendered again\" }}")}}}
	orig := &chartv2.Chart{
		Metadata:  &chartv2.Metadata{APIVersion: "v2", Name: "app", Version: "0.1.0", Dependencies: []*chartv2.Dependency{{Name: "db", Version: "0.1.0"}}},
		Templates: []*common.File{{Name: "templates/cm.yaml", Data: []byte("{{ range until 100000000 }}x{{ end }}")}},
		Files:     []*common.File{{Name: "crds/widgets.yaml", Data: []byte(crd)}},
	}
	orig.SetDependencies(sub)

	got, err := Literal(orig, objs, hooks)
	if err != nil {
		t.Fatal(err)
	}
	lit := got.(*chartv2.Chart)
	if len(lit.Dependencies()) != 0 || len(lit.Metadata.Dependencies) != 0 {
		t.Fatalf("literal chart: %d subcharts, %d declared; want none", len(lit.Dependencies()), len(lit.Metadata.Dependencies))
	}
	// Helm installs the CRDs of crds/ directories before the release:
	// the chart's and its subchart's are the copy's.
	var crdFiles []string
	for _, c := range lit.CRDObjects() {
		crdFiles = append(crdFiles, c.Name+": "+string(c.File.Data))
	}
	if got := strings.Join(crdFiles, "\n"); len(crdFiles) != 2 || !strings.Contains(got, "crds/widgets.yaml: ---") ||
		!strings.Contains(got, "name: widgets.example.test") || !strings.Contains(got, "crds/charts-db-crds-tables.yaml: ---") || !strings.Contains(got, "name: tables.example.test") {
		t.Errorf("the copy's CRDs:\n%s\nwant the chart's and the subchart's", got)
	}
	vals, err := chartutil.ToRenderValues(lit, map[string]any{}, common.ReleaseOptions{Name: "r", Namespace: "ns", Revision: 7, IsUpgrade: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(lit, vals)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"app/templates/cm.yaml":            {"name: settings", "{{ $labels.instance }} is down"},
		"app/charts/db/templates/svc.yaml": {"name: db"},
		"app/templates/hook.yaml":          {"name: hook-1", "helm.sh/hook: post-upgrade"},
		"app/templates/crds/gadgets.yaml":  {"gadgets.example.test"},
	}
	for file, parts := range want {
		for _, p := range parts {
			if !strings.Contains(out[file], p) {
				t.Errorf("%s renders %q, want %q in it", file, out[file], p)
			}
		}
	}
	for file, text := range out {
		if strings.Contains(text, "widgets.example.test") || strings.Contains(text, "tables.example.test") {
			t.Errorf("%s holds a CRD of a crds/ directory", file)
		}
	}
	if len(orig.Dependencies()) != 1 || string(orig.Templates[0].Data) != "{{ range until 100000000 }}x{{ end }}" || len(orig.Metadata.Dependencies) != 1 {
		t.Error("Literal changed the chart it was given")
	}
}
