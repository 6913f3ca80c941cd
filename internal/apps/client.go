package apps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Connection says how to reach the cluster.
type Connection struct {
	// Kubeconfig path; empty means $KUBECONFIG, ~/.kube/config, then the
	// default sandbox's kubeconfig (so `berth up` needs no setup).
	Kubeconfig string
	// Namespace; empty means the kubeconfig's namespace.
	Namespace string
}

// Config loads the client configuration and the effective namespace.
func (c Connection) Config() (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Kubeconfig != "" {
		rules.ExplicitPath = c.Kubeconfig
	} else if os.Getenv("KUBECONFIG") == "" {
		home, _ := os.UserHomeDir()
		if _, err := os.Stat(filepath.Join(home, ".kube", "config")); errors.Is(err, os.ErrNotExist) {
			sb := sandbox.KubeconfigPath(sandbox.DefaultStateDir(""))
			if _, err := os.Stat(sb); err == nil {
				rules.ExplicitPath = sb
			}
		}
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("loading kubeconfig: %w", err)
	}
	// client-go's default (5 QPS) would make listing and creating many
	// Applications crawl; APF protects the server.
	cfg.QPS, cfg.Burst = 200, 400
	ns := c.Namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil || ns == "" {
			ns = "default"
		}
	}
	return cfg, ns, nil
}

// Client returns a client for berth and Kubernetes types.
func (c Connection) Client() (client.WithWatch, *rest.Config, string, error) {
	cfg, ns, err := c.Config()
	if err != nil {
		return nil, nil, "", err
	}
	cl, err := client.NewWithWatch(cfg, client.Options{Scheme: agent.Scheme()})
	if err != nil {
		return nil, nil, "", fmt.Errorf("creating client: %w", err)
	}
	return cl, cfg, ns, nil
}
