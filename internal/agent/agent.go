package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/controller/application"
	"github.com/berth-dev/berth/internal/renderworker"
	"github.com/berth-dev/berth/internal/source"
	"github.com/berth-dev/berth/internal/webhook"
)

// Options configure the agent; BindFlags maps them to `berth agent` flags.
type Options struct {
	Kubeconfig        string
	MetricsAddr       string
	ProbeAddr         string
	PprofAddr         string
	WebhookAddr       string
	WebhookSecretFile string
	// WebhookGitLabTokenFile holds the token of /hooks/gitlab. GitLab sends
	// it in clear, so it is not the HMAC secret; without it the endpoint is
	// off.
	WebhookGitLabTokenFile  string
	LeaderElect             bool
	LeaderElectionNamespace string
	LeaderElectionID        string
	// PodName and PodNamespace name the pod this agent runs in (the
	// install sets them from the downward API). When set, the pod carries
	// berth.dev/leader=true while this agent leads, and the webhook Service
	// selects that label: webhooks reach the one replica that serves them.
	PodName               string
	PodNamespace          string
	DefaultServiceAccount string
	// TrustedNamespaces hold the Applications that may deploy into any
	// namespace, as that namespace's service account (or as a user their
	// serviceAccountName names in full). An Application anywhere else
	// deploys only into its own namespace, as one of its service accounts.
	TrustedNamespaces []string
	// WatchNamespace restricts the agent to Applications in one namespace
	// (empty: all namespaces).
	WatchNamespace string
	CacheDir       string
	// MaxRepoFiles refuses a commit of more entries (files, directories,
	// symbolic links): see source.Options.MaxFiles.
	MaxRepoFiles    int
	DefaultInterval time.Duration
	Concurrency     int
	ResolveImages   bool
	// Render bounds each Helm or Kustomize render, made in a worker
	// process (see renderworker); its Command and Env are for tests.
	Render renderworker.Options
	// RESTConfig overrides Kubeconfig (tests).
	RESTConfig *rest.Config
	// Ready, when set, is closed once the manager has started (tests).
	Ready chan<- struct{}
	// Elected, when set, is closed when this agent becomes leader (tests).
	Elected chan<- struct{}
}

// DefaultOptions returns the defaults of `berth agent`.
func DefaultOptions() Options {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return Options{
		MetricsAddr:             ":8080",
		ProbeAddr:               ":8081",
		WebhookAddr:             ":9292",
		LeaderElect:             true,
		LeaderElectionNamespace: "berth-system",
		LeaderElectionID:        "berth-agent",
		TrustedNamespaces:       []string{"berth-system"},
		CacheDir:                filepath.Join(cache, "berth", "agent"),
		MaxRepoFiles:            100_000,
		DefaultInterval:         time.Minute,
		Concurrency:             8,
		ResolveImages:           true,
		Render:                  renderworker.DefaultOptions(),
	}
}

// BindFlags registers the options as flags.
func (o *Options) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig (default: $KUBECONFIG when set, else in-cluster, else ~/.kube/config)")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "Prometheus metrics address (0 disables)")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", o.ProbeAddr, "health and readiness probe address")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", o.PprofAddr, "Go pprof address for profiling (default off)")
	fs.StringVar(&o.WebhookAddr, "webhook-bind-address", o.WebhookAddr, "Git webhook receiver address (0 disables)")
	fs.StringVar(&o.WebhookSecretFile, "webhook-secret-file", o.WebhookSecretFile, "file holding the webhook HMAC secret (GitHub, generic); read again when it changes, endpoints off while it is missing")
	fs.StringVar(&o.WebhookGitLabTokenFile, "webhook-gitlab-token-file", o.WebhookGitLabTokenFile, "file holding the GitLab webhook token, sent in clear by GitLab, so distinct from the HMAC secret (without it /hooks/gitlab is off)")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "use a Lease so only one replica acts")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", o.LeaderElectionNamespace, "namespace of the leader-election Lease")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", o.LeaderElectionID, "name of the leader-election Lease")
	fs.StringVar(&o.PodName, "pod-name", o.PodName, "this agent's pod, labelled "+berthv1.LeaderLabel+"=true while it leads so that the webhook Service reaches it (default: none)")
	fs.StringVar(&o.PodNamespace, "pod-namespace", o.PodNamespace, "namespace of --pod-name (default: --leader-election-namespace)")
	fs.StringVar(&o.DefaultServiceAccount, "default-service-account", o.DefaultServiceAccount, "service account impersonated when an Application names none (none: such Applications are refused)")
	fs.StringSliceVar(&o.TrustedNamespaces, "trusted-namespaces", o.TrustedNamespaces, "namespaces whose Applications may deploy into any namespace (as its service account); an Application elsewhere deploys only into its own namespace, as one of its service accounts")
	fs.StringVar(&o.WatchNamespace, "watch-namespace", o.WatchNamespace, "only reconcile Applications in this namespace (default: all)")
	fs.StringVar(&o.CacheDir, "cache-dir", o.CacheDir, "where Git snapshots are kept")
	fs.IntVar(&o.MaxRepoFiles, "max-repo-files", o.MaxRepoFiles, "refuse a commit of more entries (files, directories and symbolic links, as checked out): a bound on \"git bombs\", which a few objects in a pack expand to millions of paths")
	fs.DurationVar(&o.DefaultInterval, "default-interval", o.DefaultInterval, "Git poll interval when an Application sets none")
	fs.BoolVar(&o.ResolveImages, "resolve-images", o.ResolveImages, "resolve image tags to digests and apply digest-pinned references (tag-moved detection)")
	fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "Applications reconciled in parallel")
	fs.Var(quantity{&o.Render.MemoryLimit}, "render-memory-limit", "memory of its own (256Mi, 1Gi) a Helm or Kustomize render may use in its worker process before it is stopped and its revision rejected")
	fs.DurationVar(&o.Render.Timeout, "render-timeout", o.Render.Timeout, "how long a Helm or Kustomize render may run in its worker process before it is stopped and its revision rejected")
	fs.IntVar(&o.Render.Workers, "render-workers", o.Render.Workers, "Helm and Kustomize renders run at once, each in its own worker process")
}

// quantity is a flag of bytes written as a Kubernetes quantity (256Mi).
type quantity struct{ v *int64 }

func (q quantity) String() string {
	if q.v == nil {
		return ""
	}
	return resource.NewQuantity(*q.v, resource.BinarySI).String()
}

func (q quantity) Set(s string) error {
	x, err := resource.ParseQuantity(s)
	if err != nil {
		return err
	}
	if x.Value() <= 0 {
		return fmt.Errorf("%s: want more than zero", s)
	}
	*q.v = x.Value()
	return nil
}

func (q quantity) Type() string { return "quantity" }

// Scheme returns the scheme with Kubernetes and berth types.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = berthv1.AddToScheme(s)
	return s
}

func (o *Options) restConfig() (*rest.Config, error) {
	if o.RESTConfig != nil {
		return rest.CopyConfig(o.RESTConfig), nil
	}
	if o.Kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	}
	return ctrl.GetConfig()
}

// Run runs the agent until ctx ends.
func Run(ctx context.Context, o Options, log logr.Logger) error {
	cfg, err := o.restConfig()
	if err != nil {
		return fmt.Errorf("loading cluster configuration: %w", err)
	}
	// Server-side Priority and Fairness protects the apiserver; a low
	// client-side limit would only serialise a monorepo's Applications.
	cfg.QPS, cfg.Burst = 1000, 2000
	ctrl.SetLogger(log)
	secrets, err := webhookSecrets(o, log)
	if err != nil {
		return err
	}
	mopts := ctrl.Options{
		Scheme:                        Scheme(),
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.ProbeAddr,
		PprofBindAddress:              o.PprofAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOptions(o.WatchNamespace),
		Client:                        clientOptions(),
		Logger:                        log,
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating discovery client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	fetchDur := application.FetchObserver()
	ropts := o.Render
	ropts.Stopped = application.RenderStopObserver()
	renders, err := renderworker.New(ropts)
	if err != nil {
		return err
	}
	defer renders.Close()
	rec := &application.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Config:    cfg,
		Mapper:    mapper,
		Fetcher:   source.NewFetcher(source.Options{CacheDir: filepath.Join(o.CacheDir, "snapshots"), MaxFiles: o.MaxRepoFiles, Observe: fetchDur}),
		// The new events API wants an action per event; the reasons used
		// here map onto it when release records land.
		Recorder:              mgr.GetEventRecorderFor("berth-agent"), //nolint:staticcheck // see above
		DefaultServiceAccount: o.DefaultServiceAccount,
		TrustedNamespaces:     o.TrustedNamespaces,
		DefaultInterval:       o.DefaultInterval,
		MaxConcurrent:         o.Concurrency,
		SkipImageResolution:   !o.ResolveImages,
		Namespace:             o.WatchNamespace,
		Renderer:              renders,
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the Application controller: %w", err)
	}
	if o.WebhookAddr != "" && o.WebhookAddr != "0" {
		slogger := slog.New(logr.ToSlogHandler(log.WithName("webhook")))
		h := webhook.NewHandler(secrets,
			func(ctx context.Context, urls []string) (int, error) {
				apps, err := rec.TriggerURL(ctx, urls...)
				return len(apps), err
			}, slogger)
		if err := mgr.Add(&httpRunnable{addr: o.WebhookAddr, handler: h}); err != nil {
			return err
		}
	}
	if o.PodName != "" {
		ns := o.PodNamespace
		if ns == "" {
			ns = o.LeaderElectionNamespace
		}
		if ns == "" {
			return errors.New("--pod-name needs --pod-namespace (or --leader-election-namespace)")
		}
		lp, err := newLeaderPod(cfg, ns, o.PodName, log.WithName("leader"))
		if err != nil {
			return err
		}
		if err := mgr.Add(clearLabel{lp}); err != nil {
			return err
		}
		if err := mgr.Add(lp); err != nil {
			return err
		}
	}
	if o.Elected != nil {
		elected := o.Elected
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			close(elected)
			<-ctx.Done()
			return nil
		})); err != nil {
			return err
		}
	}
	if o.Ready != nil {
		ready := o.Ready
		go func() {
			if mgr.GetCache().WaitForCacheSync(ctx) {
				close(ready)
			}
		}()
	}
	log.Info("starting agent", "leaderElection", o.LeaderElect, "defaultServiceAccount", o.DefaultServiceAccount, "trustedNamespaces", o.TrustedNamespaces)
	return mgr.Start(ctx)
}

// httpRunnable serves the webhook receiver on the leader only: the
// reconciler it triggers runs there.
type httpRunnable struct {
	addr    string
	handler http.Handler
}

func (h *httpRunnable) Start(ctx context.Context) error {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", h.addr)
	if err != nil {
		return fmt.Errorf("webhook listener: %w", err)
	}
	// Bodies (at most 1 MiB) are read before their signature can be
	// checked: a caller trickling one must not hold the connection.
	srv := &http.Server{Handler: h.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// webhookSecrets returns the receiver's secrets, read from their files at
// each request. A file that does not exist yet (the install mounts an
// optional Secret) leaves its endpoints off, and says so; one that exists
// but cannot be read is an error.
func webhookSecrets(o Options, log logr.Logger) (webhook.Secrets, error) {
	var s webhook.Secrets
	var values [2][]byte
	for i, f := range []struct{ path, what, endpoints string }{
		{o.WebhookSecretFile, "webhook secret", "/hooks/github and /hooks/generic"},
		{o.WebhookGitLabTokenFile, "GitLab webhook token", "/hooks/gitlab"},
	} {
		if f.path == "" {
			continue
		}
		v, err := webhook.ReadSecretFile(f.path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			log.Info("no "+f.what+" yet: "+f.endpoints+" answer 404 until the file exists", "file", f.path)
		case err != nil:
			return s, fmt.Errorf("reading %s: %w", f.what, err)
		}
		values[i] = v
	}
	// Whoever sees GitLab's header could otherwise sign GitHub and generic
	// calls. The receiver turns every endpoint off while they are equal
	// (it checks at each request, as the files may change); the agent
	// itself keeps reconciling: webhooks only make it faster.
	if len(values[1]) > 0 && string(values[1]) == string(values[0]) {
		log.Error(errors.New("the GitLab webhook token equals the HMAC secret"), "GitLab sends its token in clear: every webhook endpoint is off until they differ")
	}
	if o.WebhookSecretFile != "" {
		s.GitHub = webhook.File(o.WebhookSecretFile)
		s.Generic = s.GitHub
	}
	if o.WebhookGitLabTokenFile != "" {
		s.GitLab = webhook.File(o.WebhookGitLabTokenFile)
	}
	return s, nil
}

// clientOptions keeps Secrets out of the agent's cache: it reads a few
// (Git credentials, release manifests), and a cached read would start an
// informer holding every Secret of every namespace in the agent's memory.
func clientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}
}

func cacheOptions(ns string) cache.Options {
	if ns == "" {
		return cache.Options{}
	}
	return cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}}
}
