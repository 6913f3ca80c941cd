package helmrelease

import (
	"fmt"
	"path"
	"strings"

	chart "helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/common"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/internal/manifest"
)

// Literal returns a copy of chart ch whose templates are objs and hooks
// as berth rendered, checked and pinned them, written out as text, for
// Upgrade to install: Helm renders the chart again to install it, and that
// second render would differ from berth's wherever a template draws random
// values or reads .Release.Revision (berth's render is an install's,
// revision 1), and would run in the agent's own process, where a template
// that never ends cannot be stopped. With Literal's copy, Helm's render is
// a copy of text: the release holds what berth checked, hooks included.
//
// Each object keeps the template file it came from (Helm names it in the
// release manifest's "# Source:"). Subcharts are left out, their objects
// being in objs already. The CRDs of crds/ directories, which Helm
// installs apart from the release before it (berth's apply comes after
// Helm's), are the copy's crds/ files: those objs holds, the chart's and
// its enabled subcharts'.
func Literal(ch chart.Charter, objs, hooks []manifest.Object) (chart.Charter, error) {
	c, ok := ch.(*chartv2.Chart)
	if !ok || c.Metadata == nil {
		return nil, fmt.Errorf("installing a chart of type %T is not supported (apiVersion v1 or v2 charts are)", ch)
	}
	var names, crdNames []string
	docs, crds := map[string]*strings.Builder{}, map[string]*strings.Builder{}
	for _, o := range append(append([]manifest.Object(nil), objs...), hooks...) {
		isCRD := ChartCRD(o.Source.File)
		group, order, name := docs, &names, templateName(c.Metadata.Name, o.Source.File)
		if isCRD {
			group, order, name = crds, &crdNames, crdFileName(c.Metadata.Name, o.Source.File)
		}
		b, ok := group[name]
		if !ok {
			b = &strings.Builder{}
			group[name] = b
			*order = append(*order, name)
		}
		y, err := yaml.Marshal(o.Object.Object)
		if err != nil {
			return nil, fmt.Errorf("encoding %s for helm: %w", o.ID(), err)
		}
		b.WriteString("---\n")
		if isCRD {
			b.Write(y) // a file, not a template
			continue
		}
		// Text, not a template: "{{" in a value is printed as it is.
		b.WriteString(strings.ReplaceAll(string(y), "{{", "{{`{{`}}"))
	}
	lit := *c
	md := *c.Metadata
	md.Dependencies = nil
	lit.Metadata = &md
	lit.Lock = nil
	lit.SetDependencies()
	lit.Templates = nil
	for _, n := range names {
		lit.Templates = append(lit.Templates, &common.File{Name: n, Data: []byte(docs[n].String())})
	}
	lit.Files = nil
	for _, f := range c.Files {
		if !strings.HasPrefix(f.Name, "crds/") {
			lit.Files = append(lit.Files, f)
		}
	}
	for _, n := range crdNames {
		lit.Files = append(lit.Files, &common.File{Name: n, Data: []byte(crds[n].String())})
	}
	return &lit, nil
}

// crdFileName is the crds/ file of Literal's copy for a CRD whose "#
// Source:" is file: chartName/crds/x.yaml stays crds/x.yaml, a subchart's
// chartName/charts/sub/crds/y.yaml becomes crds/charts-sub-crds-y.yaml.
func crdFileName(chartName, file string) string {
	name := strings.TrimPrefix(file, chartName+"/")
	if rest, ok := strings.CutPrefix(name, "crds/"); ok {
		return "crds/" + rest
	}
	return "crds/" + strings.ReplaceAll(name, "/", "-")
}

// templateName is the template file of chart chartName that rendered an
// object whose "# Source:" is file (chartName/templates/x.yaml, or
// chartName/charts/sub/templates/y.yaml for a subchart's).
func templateName(chartName, file string) string {
	name, ok := strings.CutPrefix(file, chartName+"/")
	if !ok || name == "" || path.Base(name) == "" || strings.HasPrefix(path.Base(name), "_") {
		return "templates/berth-rendered.yaml"
	}
	return name
}

// ChartCRD reports whether file (as Helm's "# Source:" names it) is in the
// crds/ directory of a chart or subchart: chart/crds/..., or
// chart/charts/sub/crds/... — not a template that happens to be in a
// templates/crds/ directory.
func ChartCRD(file string) bool {
	parts := strings.Split(file, "/")
	for i := 1; i < len(parts)-1; i++ {
		if parts[i] == "crds" && (i == 1 || parts[i-2] == "charts") {
			return true
		}
	}
	return false
}
