package policy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/manifest"
)

// repository1000 returns a 1000-object revision: 250 Deployments (init
// container, two containers), 250 ConfigMaps, 250 Services and 250 RBAC
// objects, with a sprinkling of violations.
func repository1000(t testing.TB) []manifest.Object {
	var b strings.Builder
	for i := 0; i < 250; i++ {
		img := fmt.Sprintf("registry.example.com:5000/team/app%d:1.%d", i, i)
		if i%10 == 0 {
			img = "nginx:latest"
		}
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app%[1]d, namespace: ns%[2]d}
spec:
  replicas: 2
  selector: {matchLabels: {app: app%[1]d}}
  template:
    metadata: {labels: {app: app%[1]d}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      initContainers:
      - name: migrate
        image: %[3]s
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
      containers:
      - name: app
        image: %[3]s
        ports: [{containerPort: 8080}]
        resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 128Mi}}
        readinessProbe: {httpGet: {path: /ready, port: 8080}}
        livenessProbe: {httpGet: {path: /live, port: 8080}}
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
      - name: proxy
        image: envoyproxy/envoy:v1.31.0
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app%[1]d, namespace: ns%[2]d}
data:
  LOG_LEVEL: info
  DB_HOST: db.ns%[2]d.svc
  FEATURE_FLAGS: "a,b,c"
  app.properties: |
    server.port=8080
    cache.size=1000
    greeting=hello world
---
apiVersion: v1
kind: Service
metadata: {name: app%[1]d, namespace: ns%[2]d}
spec:
  selector: {app: app%[1]d}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: app%[1]d, namespace: ns%[2]d}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: app%[1]d, namespace: ns%[2]d}]
`, i, i%20, img)
	}
	objs, err := manifest.Parse("repo.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1000 {
		t.Fatalf("generated %d objects", len(objs))
	}
	return objs
}

// BenchmarkEvaluate1000 measures Evaluate over a 1000-object revision with
// the default configuration (the agent's and `berth check`'s work after
// rendering; no registry lookups).
func BenchmarkEvaluate1000(b *testing.B) {
	objs := repository1000(b)
	ctx := context.Background()
	if _, err := Evaluate(ctx, objs, Config{}); err != nil { // builds the gitleaks detector once
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := Evaluate(ctx, objs, Config{})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Blocked() {
			b.Fatal("expected the :latest images to block")
		}
	}
}
