package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"k8s.io/client-go/tools/clientcmd"
)

// writeKubeconfigs writes the admin kubeconfig and one per component, with
// certificates embedded so each file stands alone.
func writeKubeconfigs(dir string, keys pki, apiPort int) error {
	ca, err := os.ReadFile(keys.path("ca.crt"))
	if err != nil {
		return fmt.Errorf("reading CA: %w", err)
	}
	server := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	files := map[string]string{
		KubeconfigPath(dir): "admin",
		filepath.Join(dir, ControllerManager+".kubeconfig"): ControllerManager,
		filepath.Join(dir, Scheduler+".kubeconfig"):         Scheduler,
		filepath.Join(dir, Kwok+".kubeconfig"):              Kwok,
	}
	for path, id := range files {
		crt, err := os.ReadFile(keys.path(id + ".crt"))
		if err != nil {
			return fmt.Errorf("reading %s certificate: %w", id, err)
		}
		key, err := os.ReadFile(keys.path(id + ".key"))
		if err != nil {
			return fmt.Errorf("reading %s key: %w", id, err)
		}
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["berth-sandbox"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
		cfg.AuthInfos[id] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
		cfg.Contexts["berth-sandbox"] = &clientcmdapi.Context{Cluster: "berth-sandbox", AuthInfo: id}
		cfg.CurrentContext = "berth-sandbox"
		if err := clientcmd.WriteToFile(*cfg, path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("protecting %s: %w", path, err)
		}
	}
	return nil
}
