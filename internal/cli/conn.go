package cli

import (
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/apps"
)

// connFlags are the cluster-connection flags shared by commands that talk
// to a cluster.
type connFlags struct {
	apps.Connection
	AllNamespaces bool
}

func (c *connFlags) bind(fs *pflag.FlagSet, allNamespaces bool) {
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, ~/.kube/config, then the running sandbox's)")
	fs.StringVarP(&c.Namespace, "namespace", "n", "", "namespace of the Application (default: the kubeconfig's)")
	if allNamespaces {
		fs.BoolVarP(&c.AllNamespaces, "all-namespaces", "A", false, "every namespace")
	}
}
