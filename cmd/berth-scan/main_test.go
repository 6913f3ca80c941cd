package main

import (
	"os/exec"
	"strings"
	"testing"
)

// berth-scan must stay small and quick to start: no Kubernetes client,
// Helm, controller or Kustomize code may creep into it through an import.
func TestLinksNoKubernetesCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var bad []string
	for _, pkg := range strings.Fields(string(out)) {
		for _, prefix := range []string{"k8s.io/", "helm.sh/", "sigs.k8s.io/controller-runtime", "sigs.k8s.io/kustomize", "sigs.k8s.io/cli-utils",
			"github.com/berth-dev/berth/internal/agent", "github.com/berth-dev/berth/internal/sandbox", "github.com/berth-dev/berth/internal/cli\n"} {
			if strings.HasPrefix(pkg+"\n", prefix) {
				bad = append(bad, pkg)
			}
		}
	}
	if len(bad) > 0 {
		t.Fatalf("berth-scan links %d packages it must not: %v", len(bad), bad)
	}
}
