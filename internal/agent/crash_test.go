package agent_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/failpoint"
	"github.com/berth-dev/berth/internal/helmrelease"
)

// childAgentEnv makes the test binary run `berth agent` (see TestMain).
const childAgentEnv = "BERTH_TEST_CHILD_AGENT"

// startChildAgent runs the agent as a separate process (this test binary
// re-executed as `berth agent`) with failpoint armed, and returns a channel
// that yields its exit state.
func (f *fixture) startChildAgent(fp string) <-chan *os.ProcessState {
	t := f.t
	t.Helper()
	exe, err := os.Executable()
	must(t, err)
	logPath := filepath.Join(t.TempDir(), "child-agent.log")
	logFile, err := os.Create(logPath)
	must(t, err)
	cmd := exec.Command(exe, "agent",
		"--kubeconfig", filepath.Join(f.env.Dir, "kubeconfig"),
		"--watch-namespace", f.ns, "--cache-dir", t.TempDir(),
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--webhook-bind-address", "0",
		"--default-interval", "2s", "--leader-elect=false")
	cmd.Env = append(os.Environ(), childAgentEnv+"=1", failpoint.Env+"="+fp)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	must(t, cmd.Start())
	exited := make(chan *os.ProcessState, 1)
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		exited <- cmd.ProcessState
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("child agent log (tail):\n%s", strings.Join(lines, "\n"))
		}
	})
	return exited
}

// waitKilled waits for the child agent to die by SIGKILL at its failpoint.
func waitKilled(t *testing.T, exited <-chan *os.ProcessState, within time.Duration) {
	t.Helper()
	select {
	case st := <-exited:
		ws, ok := st.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child agent exited with %v, want killed by its failpoint", st)
		}
	case <-time.After(within):
		t.Fatalf("child agent did not reach its failpoint within %s", within)
	}
}

func deploymentGeneration(f *fixture) int64 {
	var d appsv1.Deployment
	f.get(&d, "web")
	return d.Generation
}

// An agent SIGKILLed in the middle of an automatic rollback: after a
// restart the rollback completes exactly once, the bad commit is not
// re-applied, and the Application ends pinned and healthy.
func TestAgentKilledMidRollbackResumes(t *testing.T) {
	for _, tc := range []struct {
		failpoint string
		releases  int // recorded when the agent died
	}{
		{failpoint.RollbackApplied, 2},
		{failpoint.RollbackRecorded, 3},
	} {
		t.Run(tc.failpoint, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{noAgent: true})
			exited := f.startChildAgent(tc.failpoint)
			good := f.wt.Write("app/deploy.yaml", deploy("1")).CommitAndPush("good")
			f.createApp("demo", "app")
			f.waitApp("demo", 60*time.Second, "good release healthy", appliedReady(good))
			bad := strings.Replace(deploy("2-never-ready"), "spec:\n  replicas: 2", "spec:\n  progressDeadlineSeconds: 3\n  replicas: 2", 1)
			badSHA := f.wt.Write("app/deploy.yaml", bad).CommitAndPush("bad image")
			waitKilled(t, exited, 90*time.Second)

			rels := f.releases("demo")
			if len(rels) != tc.releases {
				t.Fatalf("at the kill: releases = %s, want %d", releaseSummary(rels), tc.releases)
			}
			if got := image(f); got != "example.test/web:1" {
				t.Fatalf("at the kill the rollback had not applied: image %q", got)
			}
			gen := deploymentGeneration(f)

			f.startAgent(false, nil)
			app := f.waitApp("demo", 60*time.Second, "rollback resumed and pinned", func(a *berthv1.Application) bool {
				return a.Status.Pin != nil && a.Status.Pin.FromCommit == badSHA && ready(a)
			})
			rels = f.releases("demo")
			if len(rels) != 3 || rels[0].Spec.Trigger != berthv1.TriggerRollback || rels[0].Spec.RollbackOf != 1 ||
				rels[1].Status.Health != berthv1.ReleaseRolledBack {
				t.Fatalf("after restart releases = %s, want one rollback", releaseSummary(rels))
			}
			if app.Status.CurrentRelease != 3 {
				t.Errorf("current release = %d", app.Status.CurrentRelease)
			}
			time.Sleep(5 * time.Second) // several polls with Git at the bad commit
			if got := image(f); got != "example.test/web:1" {
				t.Fatalf("image = %q after restart", got)
			}
			if g := deploymentGeneration(f); g != gen {
				t.Errorf("Deployment generation %d → %d: the bad commit was re-applied after the restart", gen, g)
			}
			if n := len(f.releases("demo")); n != 3 {
				t.Errorf("releases grew to %d while pinned", n)
			}
		})
	}
}

const chartDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  progressDeadlineSeconds: 3
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: example.test/web:{{ .Values.tag }}
`

// An agent SIGKILLed inside a Helm rollback leaves the Helm release
// pending-rollback; the restarted agent unlocks it and completes the
// rollback, and `helm history` has nothing pending.
func TestAgentKilledMidHelmRollbackUnlocks(t *testing.T) {
	f := newFixture(t, fixtureOptions{noAgent: true})
	exited := f.startChildAgent(failpoint.HelmRollbackUpdate)
	good := f.wt.Write("chart/Chart.yaml", chartYAML).
		Write("chart/values.yaml", "tag: \"1\"\n").
		Write("chart/templates/deploy.yaml", chartDeployment).CommitAndPush("chart v1")
	f.createApp("web", "chart")
	f.waitApp("web", 60*time.Second, "chart v1 healthy", appliedReady(good))
	badSHA := f.wt.Write("chart/values.yaml", "tag: 2-never-ready\n").CommitAndPush("bad tag")
	waitKilled(t, exited, 90*time.Second)

	latest, err := helmrelease.Latest(f.env.Config, f.ns, "web")
	must(t, err)
	if latest == nil || latest.Status != "pending-rollback" {
		t.Fatalf("at the kill helm release = %+v, want pending-rollback", latest)
	}

	f.startAgent(false, nil)
	f.waitApp("web", 60*time.Second, "rollback resumed and pinned", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.Pin.FromCommit == badSHA && ready(a)
	})
	hist, err := helmrelease.History(f.env.Config, f.ns, "web")
	must(t, err)
	for _, h := range hist {
		if strings.HasPrefix(h.Status, "pending") {
			t.Errorf("helm revision %d left %s", h.Version, h.Status)
		}
	}
	last := hist[len(hist)-1]
	if last.Status != "deployed" || !strings.Contains(last.Description, "Rollback to 1") {
		t.Errorf("helm history ends with v%d %s %q, want a deployed rollback to 1", last.Version, last.Status, last.Description)
	}
	if got := image(f); got != "example.test/web:1" {
		t.Errorf("image = %q after the resumed rollback", got)
	}
	// A later rollback to the rollback release must go through Helm too.
	if rels := f.releases("web"); len(rels) != 3 || rels[0].Spec.HelmVersion != last.Version {
		t.Errorf("rollback release = %s, Helm version %d, want Helm's v%d", releaseSummary(rels), rels[0].Spec.HelmVersion, last.Version)
	}
}

// A Helm rollback whose record is refused is retried without rolling Helm
// back again: the chart's rollback (and its hooks) runs once.
func TestRetriedHelmRollbackRunsHelmOnce(t *testing.T) {
	f := newFixture(t)
	good := f.wt.Write("chart/Chart.yaml", chartYAML).
		Write("chart/values.yaml", "tag: \"1\"\n").
		Write("chart/templates/deploy.yaml", chartDeployment).CommitAndPush("chart v1")
	f.createApp("web", "chart")
	f.waitApp("web", 60*time.Second, "chart v1 healthy", appliedReady(good))
	thaw := freezeReleasesOf(t, f, berthv1.TriggerRollback, berthv1.TriggerRollback)
	badSHA := f.wt.Write("chart/values.yaml", "tag: 2-never-ready\n").CommitAndPush("bad tag")
	f.waitApp("web", 90*time.Second, "rollback failed", func(a *berthv1.Application) bool {
		s := condition(a, berthv1.ConditionStalled)
		return s != nil && s.Status == "True" && s.Reason == "RollbackFailed" && strings.Contains(s.Message, "frozen")
	})
	time.Sleep(8 * time.Second) // retries, every pass
	thaw()
	f.waitApp("web", 60*time.Second, "rolled back on retry and pinned", func(a *berthv1.Application) bool {
		return a.Status.Pin != nil && a.Status.Pin.FromCommit == badSHA && ready(a)
	})
	hist, err := helmrelease.History(f.env.Config, f.ns, "web")
	must(t, err)
	var rollbacks []int
	for _, h := range hist {
		if strings.HasPrefix(h.Description, "Rollback to") {
			rollbacks = append(rollbacks, h.Version)
		}
	}
	if len(rollbacks) != 1 {
		t.Errorf("Helm rollback revisions = %v, want one", rollbacks)
	}
	if rels := f.releases("web"); len(rels) != 3 || rels[0].Spec.HelmVersion != rollbacks[0] {
		t.Errorf("releases = %s, rollback's Helm version %d", releaseSummary(rels), rels[0].Spec.HelmVersion)
	}
}
