package renderworker

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/render"
)

// BenchmarkRender compares a render in this process (the baseline) with
// the same render through a worker, for an overlay (rendered at every
// poll) and a chart, each of 20 objects:
//
//	go test -run '^$' -bench Render ./internal/renderworker/
func BenchmarkRender(b *testing.B) {
	var tpl, res strings.Builder
	for i := range 20 {
		fmt.Fprintf(&tpl, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {replicas: {{ .Values.replicas | quote }}, i: \"%d\"}\n", i, i)
		fmt.Fprintf(&res, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {i: \"%d\"}\n", i, i)
	}
	helm := chart(b, map[string]string{"all.yaml": tpl.String()})
	kust := write(b, map[string]string{
		"base/kustomization.yaml":          "resources: [all.yaml]\n",
		"base/all.yaml":                    res.String(),
		"overlays/prod/kustomization.yaml": "resources: [../../base]\nnameSuffix: -prod\n",
	})
	p := pool(b, "serve", Options{Workers: 1})
	cases := []struct {
		name string
		dir  string
		opts render.Options
	}{
		{"kustomize", filepath.Join(kust, "overlays/prod"), render.Options{Root: kust}},
		{"helm", helm, render.Options{ReleaseName: "demo", Namespace: "apps"}},
	}
	for _, c := range cases {
		b.Run(c.name+"/in-process", func(b *testing.B) {
			for b.Loop() {
				if _, err := render.Render(context.Background(), c.dir, c.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/worker", func(b *testing.B) {
			for b.Loop() {
				if _, err := p.Render(context.Background(), c.dir, c.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
