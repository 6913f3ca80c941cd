package policy

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-dev/berth/internal/manifest"
)

func parseFile(t testing.TB, path string) []manifest.Object {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifest.Parse(filepath.ToSlash(path), b)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func parseString(t testing.TB, yaml string) []manifest.Object {
	t.Helper()
	objs, err := manifest.Parse("x.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// allEnforced turns every rule on in enforce mode.
func allEnforced() Config {
	c := Config{Rules: map[string]RuleConfig{}}
	for _, r := range Rules() {
		c.Rules[r.ID] = RuleConfig{Mode: ModeEnforce}
	}
	return c
}

var wantLine = regexp.MustCompile(`(?m)^# want: (.*)$`)

// TestCorpus runs every rule over testdata/rules/<rule>/{good,bad}-*.yaml:
// bad files must produce the rule's violations whose messages contain every
// "# want:" line; good files must produce none of that rule.
func TestCorpus(t *testing.T) {
	for _, r := range Rules() {
		if r.ID == RuleImageTagMoved {
			continue // needs a registry: TestResolveTagMoved
		}
		dir := filepath.Join("testdata", "rules", r.ID)
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		var good, bad int
		for _, f := range files {
			if strings.HasPrefix(filepath.Base(f), "good") {
				good++
			} else {
				bad++
			}
		}
		if good == 0 || bad == 0 {
			t.Errorf("rule %s: corpus %s needs good-*.yaml and bad-*.yaml files (have %d good, %d bad)", r.ID, dir, good, bad)
		}
		for _, f := range files {
			t.Run(r.ID+"/"+filepath.Base(f), func(t *testing.T) {
				objs := parseFile(t, f)
				rep, err := Evaluate(context.Background(), objs, allEnforced())
				if err != nil {
					t.Fatal(err)
				}
				var got []Violation
				for _, v := range rep.Violations {
					if v.RuleID == r.ID {
						got = append(got, v)
					}
				}
				if strings.HasPrefix(filepath.Base(f), "good") {
					for _, v := range got {
						t.Errorf("unexpected: %s", v)
					}
					return
				}
				if len(got) == 0 {
					t.Fatalf("no %s violation", r.ID)
				}
				for _, v := range got {
					if v.Source.File != filepath.ToSlash(f) || v.Source.Line < 1 || v.Fix == "" || v.Severity == "" {
						t.Errorf("violation lacks source, fix or severity: %+v", v)
					}
				}
				b, _ := os.ReadFile(f)
				for _, m := range wantLine.FindAllStringSubmatch(string(b), -1) {
					found := false
					for _, v := range got {
						found = found || strings.Contains(v.Message, m[1])
					}
					if !found {
						var msgs []string
						for _, v := range got {
							msgs = append(msgs, v.Message)
						}
						t.Errorf("no message contains %q; got:\n%s", m[1], strings.Join(msgs, "\n"))
					}
				}
			})
		}
	}
}

func TestViolationSourceLine(t *testing.T) {
	objs := parseFile(t, "testdata/rules/rbac-cluster-admin-binding/bad.yaml")
	rep, err := Evaluate(context.Background(), objs, Config{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range rep.Violations {
		if v.RuleID == RuleRBACClusterAdminBinding {
			got = append(got, v.Source.String()+" "+v.RuleID+" "+v.Object)
		}
	}
	want := []string{
		"testdata/rules/rbac-cluster-admin-binding/bad.yaml:1 rbac-cluster-admin-binding rbac.authorization.k8s.io/ClusterRoleBinding ci-admin",
		"testdata/rules/rbac-cluster-admin-binding/bad.yaml:10 rbac-cluster-admin-binding rbac.authorization.k8s.io/RoleBinding prod/ns-admin",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

const latestDeploy = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: prod
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:latest
`

func TestModesAndExceptions(t *testing.T) {
	objs := parseString(t, latestDeploy)
	day := func(s string) time.Time {
		d, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	exc := Exception{Rule: RuleImageLatestTag, Object: "apps/Deployment prod/*", Reason: "vendor ships only latest", Expires: "2026-12-31"}
	tests := []struct {
		name        string
		cfg         Config
		now         time.Time
		wantMode    Mode // mode of the image-latest-tag violation; "" = none
		wantExpired bool
		wantBlocked bool
	}{
		{name: "default enforce", now: day("2026-06-01T00:00:00Z"), wantMode: ModeEnforce, wantBlocked: true},
		{name: "warn", cfg: Config{Rules: map[string]RuleConfig{RuleImageLatestTag: {Mode: ModeWarn}}}, now: day("2026-06-01T00:00:00Z"), wantMode: ModeWarn},
		{name: "off", cfg: Config{Rules: map[string]RuleConfig{RuleImageLatestTag: {Mode: ModeOff}}}, now: day("2026-06-01T00:00:00Z")},
		{name: "live exception", cfg: Config{Exceptions: []Exception{exc}}, now: day("2026-12-31T23:59:59Z")},
		{name: "expired exception", cfg: Config{Exceptions: []Exception{exc}}, now: day("2027-01-01T00:00:00Z"), wantMode: ModeEnforce, wantExpired: true, wantBlocked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Evaluate(context.Background(), objs, tt.cfg, WithNow(tt.now))
			if err != nil {
				t.Fatal(err)
			}
			var mode Mode
			for _, v := range rep.Violations {
				if v.RuleID == RuleImageLatestTag {
					mode = v.Mode
				}
			}
			if mode != tt.wantMode {
				t.Errorf("mode = %q, want %q", mode, tt.wantMode)
			}
			if got := len(rep.ExpiredExceptions()) > 0; got != tt.wantExpired {
				t.Errorf("expired = %v, want %v (%+v)", got, tt.wantExpired, rep.Exceptions)
			}
			if rep.Blocked() != tt.wantBlocked {
				t.Errorf("blocked = %v, want %v: %s", rep.Blocked(), tt.wantBlocked, rep.Summary())
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	good := `apiVersion: berth.dev/v1alpha1
kind: Policy
rules:
  image-digest-required: {mode: enforce}
  container-probes: {mode: "off"}
  pod-security-restricted: {mode: enforce, severity: high}
images:
  insecureRegistries: ["registry.local:5000"]
podSecurity:
  version: v1.30
exceptions:
- rule: pod-security-baseline
  object: apps/DaemonSet kube-system/node-exporter
  reason: reads host metrics
  expires: "2027-03-31"
`
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if !c.DigestsRequired() || c.Mode(RuleContainerProbes) != ModeOff || c.Mode(RuleImageLatestTag) != ModeEnforce || len(c.Exceptions) != 1 {
		t.Errorf("config = %+v", c)
	}
	bad := []struct{ name, yaml, want string }{
		{"unknown rule", "rules:\n  no-such-rule: {mode: warn}\n", `unknown rule "no-such-rule"`},
		{"bad mode", "rules:\n  image-latest-tag: {mode: block}\n", `"block" is not enforce, warn or off`},
		{"typo field", "rulez: {}\n", "unknown field"},
		{"exception without reason", "exceptions:\n- {rule: image-latest-tag, object: x, expires: \"2027-01-01\"}\n", "reason is required"},
		{"exception bad date", "exceptions:\n- {rule: image-latest-tag, object: x, reason: r, expires: next week}\n", "want a date YYYY-MM-DD"},
		{"bad kind", "kind: Deployment\n", `kind "Deployment", want Policy`},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			_, err := Parse([]byte(b.yaml))
			if err == nil || !strings.Contains(err.Error(), b.want) {
				t.Errorf("err = %v, want containing %q", err, b.want)
			}
		})
	}
}

func TestLoadFileAndMerge(t *testing.T) {
	root := t.TempDir()
	if c, err := LoadFile(root); err != nil || len(c.Rules) != 0 {
		t.Fatalf("missing file: %+v %v", c, err)
	}
	if err := os.MkdirAll(filepath.Join(root, ".berth"), 0o755); err != nil {
		t.Fatal(err)
	}
	repoYAML := "rules:\n  container-probes: {mode: enforce, severity: high}\nexceptions:\n- {rule: image-latest-tag, object: '*', reason: r, expires: \"2030-01-01\"}\n"
	if err := os.WriteFile(filepath.Join(root, ".berth", "policy.yaml"), []byte(repoYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	repo, err := LoadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	app := Config{Rules: map[string]RuleConfig{RuleContainerProbes: {Mode: ModeWarn}}, Exceptions: []Exception{{Rule: RuleSecretInGit, Object: "*", Reason: "r", Expires: "2030-01-01"}}}
	m := Merge(repo, app)
	if got := m.Rules[RuleContainerProbes]; got.Mode != ModeWarn || got.Severity != SeverityHigh {
		t.Errorf("merged rule = %+v, want warn/high", got)
	}
	if len(m.Exceptions) != 2 {
		t.Errorf("merged exceptions = %d, want 2", len(m.Exceptions))
	}
}

func TestRedactNeverShowsValue(t *testing.T) {
	for _, v := range []string{"hunter2", "sk_live_0123456789abcdef", "ünïcödé-pässwörd-long"} {
		r := Redact(v)
		if len(v) > 4 && strings.Contains(r, v[2:]) {
			t.Errorf("Redact(%q) = %q leaks the value", v, r)
		}
	}
}

func TestParseImage(t *testing.T) {
	tests := []struct {
		in   string
		want imageRef
	}{
		{"nginx", imageRef{Repo: "nginx"}},
		{"nginx:1.27", imageRef{Repo: "nginx", Tag: "1.27"}},
		{"localhost:5000/app", imageRef{Repo: "localhost:5000/app"}},
		{"localhost:5000/app:v2", imageRef{Repo: "localhost:5000/app", Tag: "v2"}},
		{"r.io:443/a/b:1@sha256:abc", imageRef{Repo: "r.io:443/a/b", Tag: "1", Digest: "sha256:abc"}},
		{"r.io/a@sha256:abc", imageRef{Repo: "r.io/a", Digest: "sha256:abc"}},
	}
	for _, tt := range tests {
		if got := parseImage(tt.in); got != tt.want {
			t.Errorf("parseImage(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	for in, want := range map[string]string{
		"nginx":                 "index.docker.io/library/nginx:latest",
		"localhost:5000/app:v2": "localhost:5000/app:v2",
		"ghcr.io/a/b:1":         "ghcr.io/a/b:1",
	} {
		if got, err := TagKey(in); err != nil || got != want {
			t.Errorf("TagKey(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestEveryRuleDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Rules() {
		if !strings.Contains(string(b), "`"+r.ID+"`") {
			t.Errorf("docs/policy.md does not describe rule %s", r.ID)
		}
	}
}

func TestEvaluateSkipsNilObjects(t *testing.T) {
	objs := append(parseString(t, latestDeploy), manifest.Object{})
	rep, err := Evaluate(context.Background(), objs, Config{})
	if err != nil || !rep.Blocked() {
		t.Fatalf("rep = %+v, err = %v", rep, err)
	}
}

func TestExceptionWildcards(t *testing.T) {
	for _, tt := range []struct {
		pattern, object string
		want            bool
	}{
		{"*", "apps/Deployment prod/web", true},
		{"apps/Deployment prod/*", "apps/Deployment prod/web", true},
		{"apps/Deployment prod/*", "apps/Deployment staging/web", false},
		{"apps/Deployment ?rod/web", "apps/Deployment prod/web", true},
		{"ConfigMap a.b", "ConfigMap aXb", false},
	} {
		if got := wildcard(tt.pattern).MatchString(tt.object); got != tt.want {
			t.Errorf("wildcard(%q) on %q = %v, want %v", tt.pattern, tt.object, got, tt.want)
		}
	}
}
