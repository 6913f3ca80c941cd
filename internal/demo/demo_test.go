package demo_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/demo"
	"github.com/berth-dev/berth/internal/gitserver"
	"github.com/berth-dev/berth/internal/sandbox"
)

// TestUpPushDown runs `berth up` end to end: a sandbox, the Git server with
// examples/, the agent and five Applications, all Ready; a pushed change
// arrives through the post-receive hook; Down stops every process.
func TestUpPushDown(t *testing.T) {
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "berth")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../cmd/berth")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building berth: %v\n%s", err, out)
	}
	dir := t.TempDir()
	var progress bytes.Buffer
	st, err := demo.Up(ctx, demo.Options{SandboxDir: dir, Binary: bin, Progress: &progress})
	t.Cleanup(func() { _, _ = demo.Down(context.Background(), dir) })
	if err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	var out bytes.Buffer
	if err := demo.Describe(ctx, st, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"5 Applications Ready", "guestbook", "shop-production", "hello-staging", "git clone " + st.GitURL} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}

	// Push a change; the hook notifies the agent.
	work := filepath.Join(t.TempDir(), "gitops")
	for _, args := range [][]string{{"clone", "--quiet", st.GitURL, work}} {
		if err := gitserver.Run(ctx, "", args...); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(work, "guestbook", "config.yaml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, bytes.ReplaceAll(b, []byte("Hello from Git"), []byte("Hello again")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-am", "greeting"},
		{"push", "--quiet", "origin", "main"},
	} {
		if err := gitserver.Run(ctx, work, args...); err != nil {
			t.Fatal(err)
		}
	}
	kc := sandbox.KubeconfigPath(dir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := exec.CommandContext(ctx, "kubectl", "--kubeconfig", kc, "get", "configmap", "guestbook", "-n", "demo-staging", "-o", "jsonpath={.data.GREETING}").Output()
		if string(got) == "Hello again" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pushed change did not arrive within 30s (got %q)", got)
		}
		time.Sleep(200 * time.Millisecond)
	}

	stopped, err := demo.Down(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 7 { // agent, git server, 5 sandbox components
		t.Errorf("stopped %v, want the agent, the Git server and 5 sandbox components", stopped)
	}
	for _, p := range st.Processes {
		if sandbox.Running(p.PID, p.Binary, p.Start) {
			t.Errorf("PID %d still runs after down", p.PID)
		}
	}

	// Up again: the same repository at the same address, so the clone
	// made above still pushes.
	again, err := demo.Up(ctx, demo.Options{SandboxDir: dir, Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	if again.GitURL != st.GitURL {
		t.Errorf("Git URL after down and up = %s, want %s again", again.GitURL, st.GitURL)
	}
	if err := gitserver.Run(ctx, work, "pull", "--quiet"); err != nil {
		t.Errorf("the clone made before down and up cannot pull: %v", err)
	}
}
