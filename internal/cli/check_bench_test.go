package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRepository1000 writes 100 files of 10 objects each (Deployments,
// ConfigMaps, Services, RoleBindings, ...) under dir.
func writeRepository1000(b *testing.B, dir string) {
	b.Helper()
	for f := 0; f < 100; f++ {
		var sb strings.Builder
		for i := 0; i < 10; i++ {
			n := f*10 + i
			switch i % 4 {
			case 0, 1:
				fmt.Fprintf(&sb, "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app%[1]d, namespace: ns%[2]d}\nspec:\n  selector: {matchLabels: {app: app%[1]d}}\n  template:\n    metadata: {labels: {app: app%[1]d}}\n    spec:\n      initContainers:\n      - {name: init, image: \"registry.example.com:5000/init:1.%[1]d\"}\n      containers:\n      - name: app\n        image: registry.example.com:5000/app%[1]d:1.0\n        resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 32Mi}}\n        readinessProbe: {httpGet: {path: /, port: 80}}\n        livenessProbe: {httpGet: {path: /, port: 80}}\n", n, f)
			case 2:
				fmt.Fprintf(&sb, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm%[1]d, namespace: ns%[2]d}\ndata:\n  LOG_LEVEL: info\n  DB_HOST: db\n  app.properties: |\n    a=1\n    b=2\n", n, f)
			default:
				fmt.Fprintf(&sb, "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc%[1]d, namespace: ns%[2]d}\nspec:\n  selector: {app: app%[1]d}\n  ports: [{port: 80}]\n", n, f)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.yaml", f)), []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheck1000 measures `berth check` end to end on a 1000-object
// repository: load and parse the files, evaluate every gate, print JSON.
// No registry lookups (check never resolves digests).
func BenchmarkCheck1000(b *testing.B) {
	dir := b.TempDir()
	writeRepository1000(b, dir)
	s := Streams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}
	if code := Main(context.Background(), []string{"check", dir, "-o", "json"}, s); code != 0 {
		b.Fatalf("exit %d", code)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if code := Main(context.Background(), []string{"check", dir, "-o", "json"}, s); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}
