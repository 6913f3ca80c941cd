package sandbox

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsurePKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, err := ensurePKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, p.path("ca.crt"))
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA certificate is not a CA: IsCA=%v usage=%v", ca.IsCA, ca.KeyUsage)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	srv := readCert(t, p.path("apiserver.crt"))
	if _, err := srv.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("apiserver certificate does not verify for 127.0.0.1: %v", err)
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: pool, DNSName: "kubernetes.default.svc"}); err != nil {
		t.Errorf("apiserver certificate does not verify for kubernetes.default.svc: %v", err)
	}
	admin := readCert(t, p.path("admin.crt"))
	if _, err := admin.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin certificate does not verify as a client: %v", err)
	}
	if admin.Subject.CommonName != AdminUser || !slices.Contains(admin.Subject.Organization, "system:masters") {
		t.Errorf("admin subject = %v, want CN=%s O=system:masters", admin.Subject, AdminUser)
	}
	kcm := readCert(t, p.path(ControllerManager+".crt"))
	if kcm.Subject.CommonName != "system:kube-controller-manager" || len(kcm.Subject.Organization) != 0 {
		t.Errorf("controller-manager subject = %v", kcm.Subject)
	}
	if fi, err := os.Stat(p.path("ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	// A second call keeps the existing identity.
	before, _ := os.ReadFile(p.path("ca.crt"))
	if _, err := ensurePKI(dir); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(p.path("ca.crt"))
	if string(before) != string(after) {
		t.Error("ensurePKI replaced an existing CA")
	}
}

func TestFreePortsDistinct(t *testing.T) {
	ports, err := freePorts(8)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: %d is zero or repeated", ports, p)
		}
		seen[p] = true
	}
}

func TestRunningChecksBinary(t *testing.T) {
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	argv0 := os.Args[0]
	start := StartTime(os.Getpid())
	if start == 0 {
		t.Fatal("StartTime(self) = 0")
	}
	if !running(os.Getpid(), argv0, 0) || !running(os.Getpid(), argv0, start) {
		t.Errorf("running(self, %q) = false, want true", argv0)
	}
	if running(os.Getpid(), self+"-other", start) {
		t.Error("running reported true for a PID that runs another binary")
	}
	// The same binary under a recycled PID: another start time.
	if running(os.Getpid(), argv0, start+1) {
		t.Error("running reported true for a PID that started at another time")
	}
	if running(0, argv0, 0) || running(-1, argv0, 0) {
		t.Error("running reported true for a non-positive PID")
	}
}

func TestStagesSelectFailures(t *testing.T) {
	docs := strings.Split(string(stagesYAML), "\n---\n")
	var names []string
	for _, d := range docs[1:] { // docs[0] is the KwokConfiguration
		var s struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Selector struct {
					MatchExpressions []struct {
						Key      string   `json:"key"`
						Operator string   `json:"operator"`
						Values   []string `json:"values"`
					} `json:"matchExpressions"`
				} `json:"selector"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(d), &s); err != nil {
			t.Fatalf("stage document does not parse: %v\n%s", err, d)
		}
		if s.Kind != "Stage" {
			t.Errorf("document kind = %q, want Stage", s.Kind)
		}
		names = append(names, s.Metadata.Name)
		if s.Metadata.Name == "pod-ready" {
			found := false
			for _, e := range s.Spec.Selector.MatchExpressions {
				if strings.Contains(e.Key, FailAnnotation) && e.Operator == "NotIn" {
					found = true
				}
			}
			if !found {
				t.Error("pod-ready does not exclude pods selected for failure")
			}
		}
	}
	want := []string{"pod-ready", "berth-pod-never-ready", "berth-pod-crashloop", "pod-complete", "berth-pod-job-failed", "pod-delete"}
	if !slices.Equal(names, want) {
		t.Errorf("stages = %v, want %v", names, want)
	}
}

func TestBuildKeyNamesVersions(t *testing.T) {
	k := buildKey()
	for _, v := range []string{KubernetesVersion, EtcdVersion, KwokVersion} {
		if !strings.Contains(k, v) {
			t.Errorf("build key %q lacks %s", k, v)
		}
	}
	if k != buildKey() {
		t.Error("build key is not stable")
	}
}

func TestWriteModuleDropsTxtSuffix(t *testing.T) {
	dir := t.TempDir()
	if err := writeModule("k8s", dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "k8s.io/kubernetes "+KubernetesVersion) {
		t.Errorf("go.mod does not require k8s.io/kubernetes %s", KubernetesVersion)
	}
	for _, f := range []string{"go.sum", "tools.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestComponentErrorNamesLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "kube-apiserver.log")
	if err := os.WriteFile(log, []byte("line one\nError: unknown flag: --bogus\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := error(&ComponentError{Component: APIServer, Log: log, Err: errors.New("exited during startup: exit status 1")})
	msg := err.Error()
	for _, want := range []string{APIServer, log, "unknown flag: --bogus"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func TestLoadMissingState(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, ErrNoSandbox) {
		t.Errorf("Load(empty dir) = %v, want ErrNoSandbox", err)
	}
}
