package helmrelease

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/manifest"
)

func TestManifest(t *testing.T) {
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
		parse("app/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  annotations: {keep: me}\ndata: {a: b}\n"),
	}
	m, err := Manifest(objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"gadgets.example.test", filenameAnnotation + ": app/templates/crds/gadgets.yaml", filenameAnnotation + ": app/templates/cm.yaml", "keep: me"} {
		if !strings.Contains(m, want) {
			t.Errorf("manifest lacks %q:\n%s", want, m)
		}
	}
	for _, not := range []string{"widgets.example.test", "tables.example.test"} {
		if strings.Contains(m, not) {
			t.Errorf("manifest holds %s, a CRD of a crds/ directory:\n%s", not, m)
		}
	}
	if objs[3].Object.GetAnnotations()[filenameAnnotation] != "" {
		t.Error("Manifest changed the objects it was given")
	}
}
