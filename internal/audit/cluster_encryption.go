package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// encryptionAtRest answers whether Secrets are encrypted in etcd: by the
// canary read when etcd is reachable, else from the apiserver's encryption
// configuration when it is visible, else Unknown with the reason.
func encryptionAtRest(ctx context.Context, cs kubernetes.Interface, opts ClusterOptions) (Check, error) {
	var reasons []string
	if len(opts.EtcdEndpoints) > 0 {
		c, err := etcdCanary(ctx, cs, opts)
		if err == nil {
			return c, nil
		}
		reasons = append(reasons, fmt.Sprintf("etcd canary: %v", err))
	} else {
		reasons = append(reasons, "no etcd access given (--etcd-endpoint)")
	}
	args := opts.APIServerArgs
	source := "the given apiserver command line"
	if args == nil {
		var err error
		args, source, err = staticAPIServerArgs(ctx, cs)
		if err != nil {
			reasons = append(reasons, err.Error())
		}
	}
	if args != nil {
		c, err := fromEncryptionConfig(args, source)
		if err == nil {
			return c, nil
		}
		reasons = append(reasons, err.Error())
	}
	return Check{ID: CheckEncryptionAtRest, Status: Unknown, Detail: "cannot tell: " + strings.Join(reasons, "; ")}, nil
}

// etcdCanary writes a Secret with a random value through the API and reads
// its etcd key: a "k8s:enc:" prefix means encrypted, the value in clear
// means not. The canary is deleted afterwards.
func etcdCanary(ctx context.Context, cs kubernetes.Interface, opts ClusterOptions) (Check, error) {
	c := Check{ID: CheckEncryptionAtRest, Method: "etcd canary"}
	ns := opts.CanaryNamespace
	if ns == "" {
		ns = "default"
	}
	value, err := randomHex(24)
	if err != nil {
		return c, err
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "berth-audit-canary-", Namespace: ns, Labels: map[string]string{"berth.dev/audit": "canary"}},
		Data:       map[string][]byte{"canary": []byte(value)},
	}
	created, err := cs.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{})
	if err != nil {
		return c, fmt.Errorf("creating canary Secret: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = cs.CoreV1().Secrets(ns).Delete(dctx, created.Name, metav1.DeleteOptions{})
	}()
	cli, err := clientv3.New(clientv3.Config{Endpoints: opts.EtcdEndpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return c, fmt.Errorf("connecting to etcd: %w", err)
	}
	defer cli.Close()
	prefix := opts.EtcdPrefix
	if prefix == "" {
		prefix = "/registry"
	}
	key := strings.TrimSuffix(prefix, "/") + "/secrets/" + ns + "/" + created.Name
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := cli.Get(gctx, key)
	if err != nil {
		return c, fmt.Errorf("reading etcd key %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return c, fmt.Errorf("etcd key %s not found (is --etcd-prefix different?)", key)
	}
	raw := resp.Kvs[0].Value
	switch {
	case bytes.HasPrefix(raw, []byte("k8s:enc:")):
		provider := string(raw[len("k8s:enc:"):min(len(raw), 64)])
		if i := strings.IndexByte(provider, ':'); i >= 0 {
			provider = provider[:i]
		}
		c.Status = Pass
		c.Detail = fmt.Sprintf("a canary Secret is stored encrypted in etcd (key %s, provider %s)", key, provider)
	case bytes.Contains(raw, []byte(value)):
		c.Status = Fail
		c.Detail = fmt.Sprintf("a canary Secret is stored in plain text in etcd (key %s): configure --encryption-provider-config with an aescbc, aesgcm, secretbox or kms provider for secrets", key)
	default:
		return c, fmt.Errorf("etcd key %s holds neither the k8s:enc: prefix nor the canary value", key)
	}
	return c, nil
}

// staticAPIServerArgs finds the command line of a static kube-apiserver Pod
// (kubeadm and similar) in kube-system.
func staticAPIServerArgs(ctx context.Context, cs kubernetes.Interface) ([]string, string, error) {
	pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "component=kube-apiserver"})
	if err != nil {
		return nil, "", fmt.Errorf("apiserver configuration not visible: listing kube-system pods: %w", err)
	}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			if c.Name == "kube-apiserver" || strings.Contains(strings.Join(c.Command, " "), "kube-apiserver") {
				return append(append([]string{}, c.Command...), c.Args...), "Pod kube-system/" + p.Name, nil
			}
		}
	}
	return nil, "", errors.New("apiserver configuration not visible: no kube-apiserver Pod in kube-system (managed control plane?)")
}

type encryptionConfig struct {
	Kind      string `json:"kind"`
	Resources []struct {
		Resources []string         `json:"resources"`
		Providers []map[string]any `json:"providers"`
	} `json:"resources"`
}

// fromEncryptionConfig judges the apiserver's --encryption-provider-config.
func fromEncryptionConfig(args []string, source string) (Check, error) {
	c := Check{ID: CheckEncryptionAtRest, Method: "apiserver encryption configuration (" + source + ")"}
	var path string
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--encryption-provider-config="); ok {
			path = v
		} else if a == "--encryption-provider-config" && i+1 < len(args) {
			path = args[i+1]
		}
	}
	if path == "" {
		c.Status = Fail
		c.Detail = "the apiserver runs without --encryption-provider-config: Secrets are stored in plain text in etcd"
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("the apiserver uses --encryption-provider-config=%s, which is not readable here: %w", path, err)
	}
	var ec encryptionConfig
	if err := yaml.Unmarshal(b, &ec); err != nil {
		return c, fmt.Errorf("parsing %s: %w", path, err)
	}
	for _, r := range ec.Resources {
		covers := false
		for _, res := range r.Resources {
			if res == "secrets" || res == "*.*" || res == "*." {
				covers = true
			}
		}
		if !covers || len(r.Providers) == 0 {
			continue
		}
		for name := range r.Providers[0] {
			if name == "identity" {
				c.Status = Fail
				c.Detail = fmt.Sprintf("%s lists identity first for secrets: new Secrets are written in plain text", path)
				return c, nil
			}
			c.Status = Pass
			c.Detail = fmt.Sprintf("%s encrypts secrets with %s (Secrets written before it was enabled stay plain until rewritten)", path, name)
			return c, nil
		}
	}
	c.Status = Fail
	c.Detail = fmt.Sprintf("%s does not cover secrets", path)
	return c, nil
}
