package sandbox

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"sort"
)

// Pinned component versions. Changing one changes the cache key, so a new
// version is built next to the old one instead of over it.
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.6.16"
	KwokVersion       = "v0.7.0"
)

// Component names, also used for log files and in status output.
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
	Kwok              = "kwok"
)

// Components lists the sandbox's components in start order.
var Components = []string{Etcd, APIServer, ControllerManager, Scheduler, Kwok}

//go:embed modules
var modulesFS embed.FS

// buildKey returns the name of the binary cache directory: the pinned
// versions plus a hash of the embedded build modules, so any change to how
// the components are built yields a fresh directory.
func buildKey() string {
	h := sha256.New()
	var files []string
	_ = fs.WalkDir(modulesFS, "modules", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	for _, f := range files {
		b, _ := modulesFS.ReadFile(f)
		h.Write([]byte(f))
		h.Write(b)
	}
	h.Write([]byte(ldflagsK8s()))
	return "k8s-" + KubernetesVersion + "_etcd-" + EtcdVersion + "_kwok-" + KwokVersion + "_" + hex.EncodeToString(h.Sum(nil))[:12]
}

func ldflagsK8s() string {
	return "-s -w" +
		" -X k8s.io/component-base/version.gitVersion=" + KubernetesVersion +
		" -X k8s.io/component-base/version.gitMajor=1" +
		" -X k8s.io/component-base/version.gitMinor=37" +
		" -X k8s.io/client-go/pkg/version.gitVersion=" + KubernetesVersion
}
