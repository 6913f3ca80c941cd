package bench

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestProcessCPUCountsWork(t *testing.T) {
	before, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 150*time.Millisecond; {
		x++
	}
	after, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 50*time.Millisecond {
		t.Fatalf("CPU went from %s to %s over 150 ms of busy loop (%d)", before, after, x)
	}
	if _, err := processCPU(-1); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}

func TestPrintRequestsPerAppLargestFirst(t *testing.T) {
	before := map[string]float64{"POST events": 10, "GET deployments": 5}
	after := map[string]float64{"POST events": 310, "GET deployments": 105, "APPLY deployments (dry run)": 200, "WATCH pods": 1}
	var b bytes.Buffer
	printRequests(&b, "100 apps, agent", before, after, 100)
	got := b.String()
	want := []string{"6.0 API server requests per app (601 in all)", "3.00  POST events", "2.00  APPLY deployments (dry run)", "1.00  GET deployments"}
	last := -1
	for _, w := range want {
		i := strings.Index(got, w)
		if i < 0 || i < last {
			t.Fatalf("output lacks %q in order:\n%s", w, got)
		}
		last = i
	}
	if strings.Contains(got, "WATCH pods") {
		t.Errorf("a request under 0.05 per app is listed:\n%s", got)
	}
}

func TestFanOutRunsEachOnceAndStopsAfterAnError(t *testing.T) {
	var ran atomic.Int64
	seen := make([]atomic.Int64, 100)
	if err := fanOut(100, 8, func(i int) error { ran.Add(1); seen[i].Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range seen {
		if seen[i].Load() != 1 {
			t.Fatalf("item %d ran %d times", i, seen[i].Load())
		}
	}
	boom := errors.New("boom")
	ran.Store(0)
	err := fanOut(10000, 2, func(i int) error {
		ran.Add(1)
		if i == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the worker's error", err)
	}
	if ran.Load() == 10000 {
		t.Fatal("every item ran after an error")
	}
}

func TestPrintCPUPerAppLargestFirst(t *testing.T) {
	before := cpuSnapshot{"kube-apiserver": time.Second, "agent": 0, "etcd": time.Second, "gone": time.Second}
	after := cpuSnapshot{"kube-apiserver": 7 * time.Second, "agent": 2 * time.Second, "etcd": 2 * time.Second}
	var b bytes.Buffer
	printCPU(&b, "100 apps, agent", before, after, 100, 5*time.Second, 2)
	got := b.String()
	for _, want := range []string{"9.0 s of CPU in 5s (90% of 2 cores), 90.0 ms per app:", "kube-apiserver 60.0 ms agent 20.0 ms etcd 10.0 ms"} {
		if !strings.Contains(got, want) {
			t.Fatalf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "gone") {
		t.Fatalf("a process missing from the second snapshot is printed:\n%s", got)
	}
}
