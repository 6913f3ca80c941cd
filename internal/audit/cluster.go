package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Status is the outcome of one cluster check.
type Status string

// Statuses.
const (
	// Pass: the cluster is hardened in this respect.
	Pass Status = "pass"
	// Fail: it is not.
	Fail Status = "fail"
	// Warn: acceptable but worth a look.
	Warn Status = "warn"
	// Unknown: it could not be checked; Detail says why.
	Unknown Status = "unknown"
)

// Check IDs.
const (
	CheckEncryptionAtRest = "secrets-encrypted-at-rest"
	CheckAnonymousAuth    = "anonymous-auth"
	CheckAgentRBAC        = "agent-rbac"
)

// Check is one answer of Cluster.
type Check struct {
	// ID is a stable check ID.
	ID string `json:"id"`
	// Status is pass, fail, warn or unknown.
	Status Status `json:"status"`
	// Method says how the answer was reached ("etcd canary", ...).
	Method string `json:"method,omitempty"`
	// Detail explains the answer, or why there is none.
	Detail string `json:"detail"`
}

// ClusterOptions configures Cluster.
type ClusterOptions struct {
	// EtcdEndpoints enable the canary check: a Secret is written through the
	// API and its etcd key read back. Plain-HTTP endpoints only for now.
	EtcdEndpoints []string
	// EtcdPrefix is the apiserver's --etcd-prefix; empty means "/registry".
	EtcdPrefix string
	// APIServerArgs is the apiserver's command line when it is visible to
	// the caller (a sandbox's state, a static pod manifest); nil means: look
	// for a static kube-apiserver Pod in kube-system.
	APIServerArgs []string
	// CanaryNamespace is where the canary Secret is created; empty means
	// "default".
	CanaryNamespace string
	// AgentServiceAccount is the agent's ServiceAccount, "namespace/name";
	// empty means "berth-system/berth".
	AgentServiceAccount string
}

// ClusterReport is the outcome of Cluster.
type ClusterReport struct {
	Checks []Check `json:"checks"`
}

// Failed reports whether any check failed.
func (r *ClusterReport) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Get returns the check with id.
func (r *ClusterReport) Get(id string) (Check, bool) {
	for _, c := range r.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

// Cluster checks what can be checked about the hardening of the
// cluster behind cfg. It needs an admin-like identity (it creates and
// deletes one canary Secret when etcd endpoints are given).
func Cluster(ctx context.Context, cfg *rest.Config, opts ClusterOptions) (*ClusterReport, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	rep := &ClusterReport{}
	enc, err := encryptionAtRest(ctx, cs, opts)
	if err != nil {
		return nil, err
	}
	rep.Checks = append(rep.Checks, enc)
	anon, err := anonymousAuth(ctx, cfg, cs)
	if err != nil {
		return nil, err
	}
	rep.Checks = append(rep.Checks, anon)
	agent, err := agentRBAC(ctx, cs, opts.AgentServiceAccount)
	if err != nil {
		return nil, err
	}
	rep.Checks = append(rep.Checks, agent)
	return rep, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating canary: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// anonymousAuth sends an unauthenticated request: 401 means anonymous
// authentication is off. When it is on, bindings that give the anonymous
// user or unauthenticated group more than the default discovery and health
// endpoints make the check fail.
func anonymousAuth(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface) (Check, error) {
	c := Check{ID: CheckAnonymousAuth, Method: "unauthenticated request to /version"}
	anon := rest.AnonymousClientConfig(cfg)
	hc, err := rest.HTTPClientFor(anon)
	if err != nil {
		return c, fmt.Errorf("building anonymous client: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(anon.Host, "/")+"/version", nil)
	if err != nil {
		return c, fmt.Errorf("building request: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.Status, c.Detail = Unknown, fmt.Sprintf("the apiserver did not answer an unauthenticated request: %v", err)
		return c, nil
	}
	_ = resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		c.Status, c.Detail = Pass, "anonymous requests are rejected (401): --anonymous-auth=false"
		return c, nil
	}
	grants, err := anonymousBindings(ctx, cs)
	if err != nil {
		return c, err
	}
	if len(grants) > 0 {
		c.Status = Fail
		c.Detail = fmt.Sprintf("anonymous requests are authenticated as system:anonymous (HTTP %d) and bound beyond the defaults: %s", resp.StatusCode, strings.Join(grants, "; "))
		return c, nil
	}
	c.Status = Warn
	c.Detail = fmt.Sprintf("anonymous requests are authenticated as system:anonymous (HTTP %d for /version), limited to the default health and version endpoints; set --anonymous-auth=false, or an AuthenticationConfiguration anonymous block restricted to /healthz, /readyz and /livez", resp.StatusCode)
	return c, nil
}

// defaultAnonymousRoles are the ClusterRoles Kubernetes itself binds to
// system:unauthenticated.
var defaultAnonymousRoles = map[string]bool{"system:public-info-viewer": true}

func anonymousBindings(ctx context.Context, cs kubernetes.Interface) ([]string, error) {
	snap, err := loadRBAC(ctx, cs)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range snap.bindings {
		for _, s := range b.subjects {
			if (s.Kind == rbacv1.UserKind && s.Name == "system:anonymous") || (s.Kind == rbacv1.GroupKind && s.Name == "system:unauthenticated") {
				if b.roleRef.Kind == "ClusterRole" && defaultAnonymousRoles[b.roleRef.Name] {
					continue
				}
				out = append(out, fmt.Sprintf("%s %s via %s", s.Kind, s.Name, b.via()))
			}
		}
	}
	return out, nil
}
