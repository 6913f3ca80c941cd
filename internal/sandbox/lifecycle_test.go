package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// These tests start real sandboxes; the binaries are compiled once (cached).

func binaries(t *testing.T) Binaries {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	b, err := Build(ctx, BuildOptions{Progress: os.Stderr})
	if err != nil {
		t.Fatalf("compiling the sandbox: %v", err)
	}
	return b
}

func up(t *testing.T, opts UpOptions) *State {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	opts.Binaries = binaries(t)
	st, err := Up(context.Background(), opts)
	t.Cleanup(func() { _, _ = Down(context.Background(), opts.Dir) })
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	return st
}

func client(t *testing.T, dir string) kubernetes.Interface {
	t.Helper()
	cfg, err := RESTConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %s (last: %s)", what, timeout, last)
}

func deployment(name, image string, replicas int32, annotations map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	deadline := int32(6)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas:                &replicas,
			ProgressDeadlineSeconds: &deadline,
			Selector:                &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	st := up(t, UpOptions{Nodes: 2})
	cs := client(t, st.Dir)

	t.Run("status", func(t *testing.T) {
		s, err := Inspect(ctx, st.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Healthy() || s.Version != KubernetesVersion {
			t.Fatalf("status: healthy=%v version=%q (%v), want healthy %s", s.Healthy(), s.Version, s.VersionErr, KubernetesVersion)
		}
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 2 {
			t.Fatalf("nodes = %d (%v), want 2", len(nodes.Items), err)
		}
	})

	t.Run("deployment becomes ready", func(t *testing.T) {
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, deployment("web", "example.test/web:1", 3, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "web 3/3 ready", func() (bool, string) {
			d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return d.Status.ReadyReplicas == 3, fmt.Sprintf("ready replicas %d", d.Status.ReadyReplicas)
		})
	})

	t.Run("failure convention", func(t *testing.T) {
		cases := []struct {
			name, image string
			ann         map[string]string
			reason      string // container waiting reason, "" for running-but-unready
		}{
			{"never-ready-tag", "example.test/web:2-never-ready", nil, ""},
			{"never-ready-pinned", "example.test/web:2-never-ready@sha256:" + strings.Repeat("a", 64), nil, ""},
			{"crashloop-tag", "registry.test:5000/web:3-crashloop", nil, "CrashLoopBackOff"},
			{"annotated", "example.test/web:1", map[string]string{FailAnnotation: "crashloop"}, "CrashLoopBackOff"},
		}
		for _, c := range cases {
			if _, err := cs.AppsV1().Deployments("default").Create(ctx, deployment(c.name, c.image, 1, c.ann), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				eventually(t, 45*time.Second, c.name+" reports ProgressDeadlineExceeded", func() (bool, string) {
					d, err := cs.AppsV1().Deployments("default").Get(ctx, c.name, metav1.GetOptions{})
					if err != nil {
						return false, err.Error()
					}
					for _, cond := range d.Status.Conditions {
						if cond.Type == appsv1.DeploymentProgressing && cond.Reason == "ProgressDeadlineExceeded" {
							return true, ""
						}
					}
					return false, "conditions: " + strings.Join(condReasons(d), ",")
				})
				pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + c.name})
				if err != nil || len(pods.Items) != 1 {
					t.Fatalf("pods = %d (%v), want 1", len(pods.Items), err)
				}
				p := pods.Items[0]
				if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].Ready {
					t.Fatalf("pod %s: phase %s statuses %+v, want Running and not ready", p.Name, p.Status.Phase, p.Status.ContainerStatuses)
				}
				w := p.Status.ContainerStatuses[0].State.Waiting
				got := ""
				if w != nil {
					got = w.Reason
				}
				if got != c.reason {
					t.Errorf("container waiting reason = %q, want %q", got, c.reason)
				}
			})
		}
	})

	t.Run("second up is refused", func(t *testing.T) {
		_, err := Up(ctx, UpOptions{Dir: st.Dir, Binaries: binaries(t)})
		if err == nil || !strings.Contains(err.Error(), "already runs") {
			t.Fatalf("Up on a running sandbox = %v, want 'already runs'", err)
		}
	})

	t.Run("a component that dies is reported", func(t *testing.T) {
		pid := st.Processes[Scheduler].PID
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "scheduler reported exited", func() (bool, string) {
			s, err := Inspect(ctx, st.Dir)
			if err != nil {
				return false, err.Error()
			}
			for _, c := range s.Components {
				if c.Name == Scheduler {
					return !c.Running && !s.Healthy() && c.Log == LogPath(st.Dir, Scheduler), ""
				}
			}
			return false, "no scheduler entry"
		})
	})

	t.Run("down stops every process and keeps files", func(t *testing.T) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "keep"}, Data: map[string]string{"k": "v"}}
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		stopped, err := Down(ctx, st.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(stopped) != len(Components)-1 { // the scheduler was already dead
			t.Errorf("stopped %v, want every component but the dead scheduler", stopped)
		}
		for name, p := range st.Processes {
			if running(p.PID, p.Binary, p.Start) {
				t.Errorf("%s (PID %d) still runs after Down", name, p.PID)
			}
		}
		if _, err := os.Stat(st.Kubeconfig()); err != nil {
			t.Errorf("Down removed the kubeconfig: %v", err)
		}

		// Up again on the same directory resumes the same cluster.
		st2, err := Up(ctx, UpOptions{Dir: st.Dir, Binaries: binaries(t)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := client(t, st2.Dir).CoreV1().ConfigMaps("default").Get(ctx, "keep", metav1.GetOptions{})
		if err != nil || got.Data["k"] != "v" {
			t.Errorf("ConfigMap after restart = %v, %v; want it kept", got, err)
		}
	})
}

func condReasons(d *appsv1.Deployment) []string {
	var out []string
	for _, c := range d.Status.Conditions {
		out = append(out, string(c.Type)+"="+c.Reason)
	}
	return out
}

func TestTwoSandboxesSideBySide(t *testing.T) {
	bins := binaries(t)
	dirs := []string{t.TempDir(), t.TempDir()}
	states := make([]*State, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range dirs {
		t.Cleanup(func() { _, _ = Down(context.Background(), dirs[i]) })
		wg.Go(func() { states[i], errs[i] = Up(context.Background(), UpOptions{Dir: dirs[i], Binaries: bins}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("sandbox %d: %v", i, err)
		}
	}
	a, b := states[0].Ports, states[1].Ports
	used := map[int]bool{}
	for _, p := range []int{a.EtcdClient, a.EtcdPeer, a.APIServer, a.Kwok, b.EtcdClient, b.EtcdPeer, b.APIServer, b.Kwok} {
		if used[p] {
			t.Fatalf("port %d used twice: %+v %+v", p, a, b)
		}
		used[p] = true
	}
	// Each apiserver holds its own data.
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "only-in-first"}}
	if _, err := client(t, dirs[0]).CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, dirs[1]).CoreV1().Namespaces().Get(ctx, "only-in-first", metav1.GetOptions{}); err == nil {
		t.Error("a namespace created in one sandbox is visible in the other")
	}
}

func TestStartupFailureNamesComponent(t *testing.T) {
	dir := t.TempDir()
	_, err := Up(context.Background(), UpOptions{
		Dir: dir, Binaries: binaries(t),
		ExtraArgs: map[string][]string{APIServer: {"--no-such-flag"}},
	})
	t.Cleanup(func() { _, _ = Down(context.Background(), dir) })
	var ce *ComponentError
	if !errors.As(err, &ce) {
		t.Fatalf("Up with a broken apiserver = %v, want a ComponentError", err)
	}
	if ce.Component != APIServer || ce.Log != LogPath(dir, APIServer) {
		t.Errorf("error names %s (%s), want %s (%s)", ce.Component, ce.Log, APIServer, LogPath(dir, APIServer))
	}
	if !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("error does not quote the log: %v", err)
	}
	st, lerr := Load(dir)
	if lerr != nil {
		t.Fatal(lerr)
	}
	if len(st.Processes) != 0 {
		t.Errorf("failed Up left processes recorded: %v", st.Processes)
	}
}
