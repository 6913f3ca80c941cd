package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv"
)

func TestGate(t *testing.T) {
	ctx := context.Background()
	reg := testenv.NewRegistry(t)
	app := reg.Host + "/app:1.0"
	d := push(t, app)
	objs := parseString(t, podYAML(app, app))
	r, _ := NewResolver(ImageConfig{})
	required := Config{Rules: map[string]RuleConfig{RuleImageDigestRequired: {Mode: ModeEnforce}}}

	t.Run("resolved and pinned", func(t *testing.T) {
		g, err := Gate(ctx, GateInput{Objects: objs, Config: required, Resolver: r})
		if err != nil || g.Held != nil || g.Report.Blocked() {
			t.Fatalf("gate = %+v, %v", g, err)
		}
		if got := imagesOf(t, g.Resolution)[1]; got != app+"@"+d {
			t.Errorf("applied image = %s", got)
		}
	})
	t.Run("helm hooks are checked, not returned", func(t *testing.T) {
		// A hook Job with the workload's image (pinned for the workload;
		// Helm still runs the hook by tag) and one with :latest.
		hooks := parseString(t, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  namespace: prod\n  annotations: {helm.sh/hook: pre-upgrade}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: "+app+"\n      - name: tool\n        image: "+reg.Host+"/tool:latest\n")
		g, err := Gate(ctx, GateInput{Objects: objs, CheckOnly: hooks, Config: required, Resolver: r})
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Objects) != len(objs) || g.Objects[0].Object.GetKind() != "Deployment" {
			t.Errorf("objects to apply = %d, want the %d given", len(g.Objects), len(objs))
		}
		rules := map[string]string{}
		for _, v := range g.Report.Enforced() {
			if v.Object == "batch/Job prod/migrate" {
				rules[v.RuleID+" "+v.Field] = v.Message
			}
		}
		if _, ok := rules[RuleImageLatestTag+" spec.template.spec.containers[1].image"]; !ok {
			t.Errorf("the hook's :latest image was not refused: %v", g.Report.Violations)
		}
		if m, ok := rules[RuleImageDigestRequired+" spec.template.spec.containers[0].image"]; !ok || !strings.Contains(m, "Helm hook") {
			t.Errorf("the hook's tag, resolved for the workload, counted as a digest: %v", g.Report.Violations)
		}
	})
	reg.Close()
	t.Run("registry down, digests required: held", func(t *testing.T) {
		g, err := Gate(ctx, GateInput{Objects: objs, Config: required, Resolver: r})
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(g.Held, ErrHeld) || !errors.Is(g.Held, ErrRegistryUnreachable) {
			t.Fatalf("held = %v, want ErrHeld wrapping ErrRegistryUnreachable", g.Held)
		}
	})
	t.Run("registry down, digests optional: warn and apply tags", func(t *testing.T) {
		g, err := Gate(ctx, GateInput{Objects: objs, Config: Config{}, Resolver: r})
		if err != nil || g.Held != nil || g.Report.Blocked() || len(g.Report.Warnings()) == 0 {
			t.Fatalf("gate = %+v, %v", g, err)
		}
		if got := imagesOf(t, g.Resolution)[1]; got != app {
			t.Errorf("applied image = %s, want the tag", got)
		}
	})
}

func TestFindFile(t *testing.T) {
	repo := t.TempDir()
	for _, d := range []string{".git", ".berth", "apps/web"} {
		if err := os.MkdirAll(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := FindFile(filepath.Join(repo, "apps/web")); ok {
		t.Fatal("found a policy file that does not exist")
	}
	if err := os.WriteFile(filepath.Join(repo, ".berth", "policy.yaml"), []byte("rules: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if root, ok := FindFile(filepath.Join(repo, "apps/web")); !ok || root != repo {
		t.Fatalf("FindFile = %q %v, want %q", root, ok, repo)
	}
}

// The agent's checkout has no .git: the search stops at its top, and finds
// the file nearest to the Application's path, as FindFile does for
// `berth check` in a clone.
func TestFindFileWithin(t *testing.T) {
	outer := t.TempDir()
	top := filepath.Join(outer, "checkout")
	for _, d := range []string{".berth", "checkout/apps/web/.berth", "checkout/apps/api"} {
		if err := os.MkdirAll(filepath.Join(outer, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Above the checkout: never read.
	if err := os.WriteFile(filepath.Join(outer, ".berth", "policy.yaml"), []byte("rules: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if root, ok := FindFileWithin(top, filepath.Join(top, "apps/api")); ok {
		t.Fatalf("FindFileWithin = %q: read a file above the checkout", root)
	}
	if err := os.WriteFile(filepath.Join(top, "apps/web/.berth/policy.yaml"), []byte("rules: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if root, ok := FindFileWithin(top, filepath.Join(top, "apps/web")); !ok || root != filepath.Join(top, "apps/web") {
		t.Fatalf("FindFileWithin = %q %v, want the app's own directory", root, ok)
	}
	if err := os.MkdirAll(filepath.Join(top, ".berth"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(top, ".berth/policy.yaml"), []byte("rules: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if root, ok := FindFileWithin(top, filepath.Join(top, "apps/api")); !ok || root != top {
		t.Fatalf("FindFileWithin = %q %v, want the checkout's top", root, ok)
	}
	if root, ok := FindFileWithin(top, filepath.Join(top, "apps/web")); !ok || root != filepath.Join(top, "apps/web") {
		t.Fatalf("FindFileWithin = %q %v, want the nearest file, not the top's", root, ok)
	}
	if _, ok := FindFileWithin(top, outer); ok {
		t.Fatal("FindFileWithin looked in a directory outside the checkout")
	}
}
