package helmrelease

import (
	"bytes"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/internal/manifest"
)

// filenameAnnotation is how Helm's post-render step keeps each object's
// template file (helm.sh/helm/v4/pkg/action): set on what a post-renderer
// returns, it names the object's "# Source:" in the release manifest.
const filenameAnnotation = "postrenderer.helm.sh/postrender-filename"

// Manifest encodes objs (a chart as berth rendered, checked and pinned it)
// for Options.Manifest. The CRDs of a chart's crds/ directories are left
// out: Helm installs those itself, apart from the release, and never
// deletes them.
func Manifest(objs []manifest.Object) (string, error) {
	var b strings.Builder
	for _, o := range objs {
		if chartCRD(o.Source.File) {
			continue
		}
		u := o.Object.DeepCopy()
		if o.Source.File != "" && o.Source.File != "helm" {
			a := u.GetAnnotations()
			if a == nil {
				a = map[string]string{}
			}
			a[filenameAnnotation] = o.Source.File
			u.SetAnnotations(a)
		}
		y, err := yaml.Marshal(u.Object)
		if err != nil {
			return "", fmt.Errorf("encoding %s for helm: %w", o.ID(), err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.String(), nil
}

// chartCRD reports whether file (as Helm's "# Source:" names it) is in the
// crds/ directory of a chart or subchart: chart/crds/..., or
// chart/charts/sub/crds/... — not a template that happens to be in a
// templates/crds/ directory.
func chartCRD(file string) bool {
	parts := strings.Split(file, "/")
	for i := 1; i < len(parts)-1; i++ {
		if parts[i] == "crds" && (i == 1 || parts[i-2] == "charts") {
			return true
		}
	}
	return false
}

// fixedManifest is a post-renderer that replaces Helm's render of the
// chart's templates with berth's.
type fixedManifest string

func (m fixedManifest) Run(*bytes.Buffer) (*bytes.Buffer, error) {
	return bytes.NewBufferString(string(m)), nil
}
