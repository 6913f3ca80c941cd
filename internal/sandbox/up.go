package sandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UpOptions configures Up.
type UpOptions struct {
	// Dir is the state directory; it is created if needed and reused if it
	// holds a stopped sandbox (certificates and etcd data are kept).
	Dir string
	// Binaries are the compiled components (see Build).
	Binaries Binaries
	// Nodes is the number of kwok nodes; 0 means 1.
	Nodes int
	// EncryptionAtRest starts the apiserver with an encryption configuration
	// that encrypts Secrets in etcd (aescbc).
	EncryptionAtRest bool
	// ExtraArgs appends flags to a component's command line, by component.
	ExtraArgs map[string][]string
	// Progress receives one line per started component; nil means quiet.
	Progress io.Writer
	// StartTimeout bounds the wait for each component; 0 means 90s.
	StartTimeout time.Duration
	// DieWithParent kills every component when the process that called
	// Up exits, however it exits: for tests and benchmarks, where a
	// panic or `go test`'s timeout must not leave a cluster running (and
	// holding its ports and the build lock). Linux only; elsewhere Down
	// must run. `berth sandbox up` leaves it off: its sandbox outlives it.
	DieWithParent bool
}

// Up starts a sandbox in opts.Dir and waits until every component is ready
// and the kwok nodes are Ready. On failure it stops what it started and
// returns an error naming the component and its log file.
func Up(ctx context.Context, opts UpOptions) (st *State, err error) {
	if opts.Nodes <= 0 {
		opts.Nodes = 1
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 90 * time.Second
	}
	if !opts.Binaries.complete() {
		return nil, fmt.Errorf("sandbox binaries missing in %s (run `berth sandbox build`)", opts.Binaries.Dir)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolving state directory: %w", err)
	}
	if old, err := Load(dir); err == nil {
		for _, c := range old.components() {
			if running(c.PID, c.Binary, c.Start) {
				return nil, fmt.Errorf("a sandbox already runs in %s (%s has PID %d); stop it with `berth sandbox down`", dir, c.name, c.PID)
			}
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, "logs"), filepath.Join(dir, "etcd")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	keys, err := ensurePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	st = &State{
		Dir:              dir,
		Ports:            Ports{EtcdClient: ports[0], EtcdPeer: ports[1], APIServer: ports[2], Kwok: ports[3]},
		Processes:        map[string]Process{},
		Nodes:            opts.Nodes,
		EncryptionAtRest: opts.EncryptionAtRest,
	}
	var procs []*started
	defer func() {
		if err != nil {
			for i := len(procs) - 1; i >= 0; i-- {
				stopProcess(procs[i].cmd.Process.Pid, procs[i].cmd.Path, procs[i].start, 10*time.Second)
			}
			st.Processes = map[string]Process{}
			_ = st.save()
			st = nil
		}
	}()
	launch := func(name string, args []string) (*started, error) {
		args = append(args, opts.ExtraArgs[name]...)
		p, err := start(name, opts.Binaries.Path(name), args, LogPath(dir, name), opts.DieWithParent)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		st.Processes[name] = Process{PID: p.cmd.Process.Pid, Start: p.start, Binary: p.cmd.Path, Args: args, Log: p.log}
		if err := st.save(); err != nil {
			return nil, err
		}
		return p, nil
	}
	say := func(format string, args ...any) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, format, args...)
		}
	}

	if err := writeKubeconfigs(dir, keys, st.Ports.APIServer); err != nil {
		return st, err
	}
	t0 := time.Now()

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(st.Ports.EtcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(st.Ports.EtcdPeer)
	p, err := launch(Etcd, []string{
		"--name=berth-sandbox", "--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=berth-sandbox=" + peerURL,
		"--unsafe-no-fsync=true", "--log-level=warn",
	})
	if err != nil {
		return st, err
	}
	if err := waitHTTP(ctx, p, opts.StartTimeout, http.DefaultClient, etcdURL+"/health"); err != nil {
		return st, err
	}
	say("  %-24s ready on %s\n", Etcd, etcdURL)

	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(st.Ports.APIServer),
		"--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=10.96.0.0/16", // room for benchmarks with thousands of Services
		"--authorization-mode=RBAC",
		"--client-ca-file=" + keys.path("ca.crt"),
		"--tls-cert-file=" + keys.path("apiserver.crt"),
		"--tls-private-key-file=" + keys.path("apiserver.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + keys.path("sa.pub"),
		"--service-account-signing-key-file=" + keys.path("sa.key"),
		"--cert-dir=" + filepath.Join(dir, "pki", "apiserver-generated"),
		"--allow-privileged=true",
		"--profiling=false",
	}
	if opts.EncryptionAtRest {
		cfg, err := ensureEncryptionConfig(dir)
		if err != nil {
			return st, err
		}
		apiArgs = append(apiArgs, "--encryption-provider-config="+cfg)
	}
	p, err = launch(APIServer, apiArgs)
	if err != nil {
		return st, err
	}
	adminCfg, err := clientcmd.BuildConfigFromFlags("", KubeconfigPath(dir))
	if err != nil {
		return st, fmt.Errorf("loading admin kubeconfig: %w", err)
	}
	httpc, err := adminHTTPClient(keys)
	if err != nil {
		return st, err
	}
	apiURL := "https://127.0.0.1:" + strconv.Itoa(st.Ports.APIServer)
	if err := waitHTTP(ctx, p, opts.StartTimeout, httpc, apiURL+"/readyz"); err != nil {
		return st, err
	}
	say("  %-24s ready on %s\n", APIServer, apiURL)

	for _, c := range []string{ControllerManager, Scheduler} {
		kc := filepath.Join(dir, c+".kubeconfig")
		args := []string{"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
			"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0",
			// The defaults (20 QPS) make the controller-manager, not the
			// workload, the bottleneck of any test with hundreds of objects.
			"--kube-api-qps=300", "--kube-api-burst=600"}
		if c == ControllerManager {
			args = append(args,
				"--service-account-private-key-file="+keys.path("sa.key"),
				"--root-ca-file="+keys.path("ca.crt"),
				"--cluster-signing-cert-file="+keys.path("ca.crt"),
				"--cluster-signing-key-file="+keys.path("ca.key"),
				"--use-service-account-credentials=true",
				"--controllers=*,-nodeipam",
			)
		}
		if _, err := launch(c, args); err != nil {
			return st, err
		}
	}

	stages := filepath.Join(dir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, stagesYAML, 0o644); err != nil {
		return st, fmt.Errorf("writing kwok stages: %w", err)
	}
	kwokURL := "http://127.0.0.1:" + strconv.Itoa(st.Ports.Kwok)
	p, err = launch(Kwok, []string{
		"--kubeconfig=" + filepath.Join(dir, Kwok+".kubeconfig"),
		"--config=" + stages,
		"--manage-all-nodes=true",
		"--server-address=127.0.0.1:" + strconv.Itoa(st.Ports.Kwok),
		"--cidr=10.244.0.1/16",
		"--node-ip=127.0.0.1",
		// Without a KwokConfiguration kwok would fall back to status-only
		// heartbeats every 20-45s, close enough to the node monitor grace
		// period for nodes to flap NotReady; leases keep them Ready.
		"--node-lease-duration-seconds=40",
	})
	if err != nil {
		return st, err
	}
	if err := waitHTTP(ctx, p, opts.StartTimeout, http.DefaultClient, kwokURL+"/healthz"); err != nil {
		return st, err
	}

	cs, err := kubernetes.NewForConfig(adminCfg)
	if err != nil {
		return st, fmt.Errorf("creating client: %w", err)
	}
	if err := ensureNodes(ctx, cs, opts.Nodes); err != nil {
		return st, err
	}
	// The controller-manager proves itself by creating the default
	// ServiceAccount; the scheduler and kwok by the nodes turning Ready.
	deadline := time.Now().Add(opts.StartTimeout)
	for _, check := range []struct {
		name  string
		ready func() (bool, error)
	}{
		{ControllerManager, func() (bool, error) {
			_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return err == nil, err
		}},
		{Kwok, func() (bool, error) { return nodesReady(ctx, cs, opts.Nodes) }},
	} {
		for {
			for _, p := range procs {
				if err := p.dead(); err != nil {
					return st, err
				}
			}
			ok, err := check.ready()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				return st, &ComponentError{Component: check.name, Log: LogPath(dir, check.name),
					Err: fmt.Errorf("not ready after %s (last error: %v)", opts.StartTimeout, err)}
			}
			select {
			case <-ctx.Done():
				return st, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	say("  %-24s running (PID %d)\n", ControllerManager, st.Processes[ControllerManager].PID)
	say("  %-24s running (PID %d)\n", Scheduler, st.Processes[Scheduler].PID)
	say("  %-24s %d node(s) Ready\n", Kwok, opts.Nodes)
	st.Started = time.Now()
	say("sandbox up in %s\n", st.Started.Sub(t0).Round(100*time.Millisecond))
	return st, st.save()
}

// waitHTTP polls url until it answers 200, p exits, or timeout passes.
func waitHTTP(ctx context.Context, p *started, timeout time.Duration, c *http.Client, url string) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if err := p.dead(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %s", url, resp.Status)
		}
		last = err
		if time.Now().After(deadline) {
			return &ComponentError{Component: p.name, Log: p.log, Err: fmt.Errorf("not ready after %s: %v", timeout, last)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// adminHTTPClient returns an HTTP client that trusts the sandbox CA and
// presents the admin certificate.
func adminHTTPClient(keys pki) (*http.Client, error) {
	caPEM, err := os.ReadFile(keys.path("ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("reading CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(keys.path("admin.crt"), keys.path("admin.key"))
	if err != nil {
		return nil, fmt.Errorf("loading admin certificate: %w", err)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}}, nil
}

// RESTConfig returns an admin client configuration for the sandbox in dir.
func RESTConfig(dir string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", KubeconfigPath(dir))
	if err != nil {
		return nil, fmt.Errorf("loading sandbox kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}
