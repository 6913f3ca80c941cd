package install

import (
	"bytes"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"text/template"

	"github.com/berth-dev/berth/config"
)

// Options configure the manifests.
type Options struct {
	Namespace             string
	Image                 string
	Replicas              int
	DefaultServiceAccount string
	// TrustedNamespaces is the agent's --trusted-namespaces: namespaces
	// whose Applications may deploy into others. Empty: the agent's own.
	TrustedNamespaces []string
	// TenantNamespaces, when set, bounds the agent's most powerful grants
	// (impersonating service accounts, reading Git credentials and writing
	// release manifests) to these namespaces, the trusted ones and its
	// own, by RoleBindings; empty: cluster-wide. Each must exist.
	TenantNamespaces []string
	// CRDsOnly limits the manifests to the CustomResourceDefinitions (the
	// agent then runs elsewhere, e.g. as a local process for `berth up`).
	CRDsOnly bool
}

// DefaultOptions returns the defaults of `berth install`.
func DefaultOptions() Options {
	return Options{Namespace: "berth-system", Image: "ghcr.io/berth-dev/berth:v0.1.0", Replicas: 2}
}

// Manifests renders the installation manifests as one YAML stream.
func Manifests(o Options) ([]byte, error) {
	var b bytes.Buffer
	err := fs.WalkDir(config.CRDs, "crd", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := config.CRDs.ReadFile(p)
		if err != nil {
			return err
		}
		b.WriteString("---\n")
		b.Write(bytes.TrimPrefix(data, []byte("---\n")))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading CRDs: %w", err)
	}
	if o.CRDsOnly {
		return b.Bytes(), nil
	}
	if len(o.TrustedNamespaces) == 0 {
		o.TrustedNamespaces = []string{o.Namespace}
	}
	if err := agentTemplate.Execute(&b, templateData{Options: o, Bound: boundNamespaces(o)}); err != nil {
		return nil, fmt.Errorf("rendering manifests: %w", err)
	}
	return b.Bytes(), nil
}

// templateData is what the agent's manifests are rendered from.
type templateData struct {
	Options
	// Bound are the namespaces the tenant grants are bound in (when
	// TenantNamespaces is set): those, the trusted ones and the agent's,
	// sorted, once each.
	Bound []string
}

func boundNamespaces(o Options) []string {
	if len(o.TenantNamespaces) == 0 {
		return nil
	}
	all := append(append(append([]string(nil), o.TenantNamespaces...), o.TrustedNamespaces...), o.Namespace)
	slices.Sort(all)
	return slices.Compact(all)
}

// tenantRules are the agent's grants that --tenant-namespaces bounds to
// namespaces: in its ClusterRole without that flag, in the
// berth-agent-tenant ClusterRole bound per namespace with it.
const tenantRules = `{{define "tenant"}}# Git credentials and image pull secrets referenced by Applications (read),
# and each release's manifests (created; the berth-agent-secrets policy
# below limits that to Secrets of type berth.dev/release-manifests, so the
# agent cannot mint service-account tokens).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create"]
# No read of workloads or Secrets beyond these: drift watches, health,
# dry runs and hook Jobs are read as each Application's service account.
# Every write happens as the Application's service account.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["impersonate"]{{end}}`

var agentTemplate = template.Must(template.Must(template.New("agent").Funcs(template.FuncMap{"join": strings.Join}).Parse(tenantRules)).Parse(`---
apiVersion: v1
kind: Namespace
metadata:
  name: {{.Namespace}}
  labels:
    pod-security.kubernetes.io/enforce: restricted
  annotations:
    berth.dev/created-by: berth-install
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: berth-agent
  namespace: {{.Namespace}}
automountServiceAccountToken: true
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: berth-agent
rules:
# Applications: read, write status, and patch to set or remove the
# berth.dev/cleanup finalizer (the berth-agent-applications policy below
# refuses any other change it would make to one).
- apiGroups: ["berth.dev"]
  resources: ["applications"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["berth.dev"]
  resources: ["applications/status"]
  verbs: ["get", "patch", "update"]
# Its own CRD, by name: a deleted Application whose CRD is being deleted
# (berth uninstalled) keeps what it applied.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  resourceNames: ["applications.berth.dev"]
  verbs: ["get"]
# Release records: the agent's own history of every Application.
- apiGroups: ["berth.dev"]
  resources: ["releases"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: ["berth.dev"]
  resources: ["releases/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if not .TenantNamespaces}}
{{template "tenant" .}}
{{- end}}
---
{{- if .TenantNamespaces}}
# What the agent may do only in the tenant namespaces (--tenant-namespaces),
# the trusted ones and its own: bound there by RoleBindings below.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: berth-agent-tenant
  labels: {berth.dev/created-by: berth-install}
rules:
{{template "tenant" .}}
{{- range .Bound}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: berth-agent-tenant
  namespace: {{.}}
  labels: {berth.dev/created-by: berth-install}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: berth-agent-tenant
subjects:
- kind: ServiceAccount
  name: berth-agent
  namespace: {{$.Namespace}}
{{- end}}
---
{{- end}}
# The agent may create Secrets only to hold release manifests: without this
# policy, create on Secrets would let it write a service-account token
# Secret for any account. Its impersonated writes (as each Application's
# service account) are not affected.
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: berth-agent-secrets
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["secrets"]
  matchConditions:
  - name: berth-agent
    expression: "request.userInfo.username == 'system:serviceaccount:{{.Namespace}}:berth-agent'"
  validations:
  - expression: "object.type == 'berth.dev/release-manifests'"
    message: "the berth agent writes only Secrets of type berth.dev/release-manifests"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: berth-agent-secrets
spec:
  policyName: berth-agent-secrets
  validationActions: [Deny]
---
# The agent patches an Application only to set or remove its finalizer: it
# changes no spec (the account to act as, the source, the policy), label,
# annotation or other finalizer.
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: berth-agent-applications
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["berth.dev"]
      apiVersions: ["*"]
      operations: ["UPDATE"]
      resources: ["applications"]
  matchConditions:
  - name: berth-agent
    expression: "request.userInfo.username == 'system:serviceaccount:{{.Namespace}}:berth-agent'"
  validations:
  - expression: >-
      object.spec == oldObject.spec &&
      object.metadata.?labels.orValue({}) == oldObject.metadata.?labels.orValue({}) &&
      object.metadata.?annotations.orValue({}) == oldObject.metadata.?annotations.orValue({}) &&
      object.metadata.?ownerReferences.orValue([]) == oldObject.metadata.?ownerReferences.orValue([]) &&
      object.metadata.?finalizers.orValue([]).filter(f, f != 'berth.dev/cleanup') ==
        oldObject.metadata.?finalizers.orValue([]).filter(f, f != 'berth.dev/cleanup')
    message: "the berth agent changes nothing of an Application but its berth.dev/cleanup finalizer"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: berth-agent-applications
spec:
  policyName: berth-agent-applications
  validationActions: [Deny]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: berth-agent
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: berth-agent
subjects:
- kind: ServiceAccount
  name: berth-agent
  namespace: {{.Namespace}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: berth-agent-leader-election
  namespace: {{.Namespace}}
rules:
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "watch", "create", "update", "patch"]
# The leader labels its own pod berth.dev/leader=true (and a standby takes
# a stale label off its own): the webhook Service selects that label.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: berth-agent-leader-election
  namespace: {{.Namespace}}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: berth-agent-leader-election
subjects:
- kind: ServiceAccount
  name: berth-agent
  namespace: {{.Namespace}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: berth-agent
  namespace: {{.Namespace}}
  labels: {app.kubernetes.io/name: berth-agent}
spec:
  replicas: {{.Replicas}}
  selector:
    matchLabels: {app.kubernetes.io/name: berth-agent}
  template:
    metadata:
      labels: {app.kubernetes.io/name: berth-agent}
    spec:
      serviceAccountName: berth-agent
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: agent
        image: {{.Image}}
        args:
        - agent
        - --leader-elect=true
        - --leader-election-namespace={{.Namespace}}
        - --cache-dir=/cache
        - --pod-name=$(POD_NAME)
        - --pod-namespace=$(POD_NAMESPACE)
        - --webhook-secret-file=/etc/berth/webhook/hmac
        - --webhook-gitlab-token-file=/etc/berth/webhook/gitlab-token
        - --trusted-namespaces={{join .TrustedNamespaces ","}}
{{- if .DefaultServiceAccount}}
        - --default-service-account={{.DefaultServiceAccount}}
{{- end}}
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        ports:
        - {name: metrics, containerPort: 8080}
        - {name: probes, containerPort: 8081}
        - {name: webhooks, containerPort: 9292}
        readinessProbe:
          httpGet: {path: /readyz, port: probes}
        livenessProbe:
          httpGet: {path: /healthz, port: probes}
        # About 300Mi for the agent at 1000 Applications, and room for its
        # two render workers (--render-workers) at --render-memory-limit.
        resources:
          requests: {cpu: 100m, memory: 128Mi}
          limits: {memory: 1Gi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts:
        - {name: cache, mountPath: /cache}
        - {name: tmp, mountPath: /tmp}
        - {name: webhook, mountPath: /etc/berth/webhook, readOnly: true}
      volumes:
      - name: cache
        emptyDir: {}
      # The root filesystem is read-only; temporary files (an SSH source's
      # known_hosts, handed to the SSH client as a file) go here.
      - name: tmp
        emptyDir: {sizeLimit: 64Mi}
      # Keys hmac (GitHub, generic) and gitlab-token; see docs/agent.md.
      # Optional: the endpoints answer 404 until the Secret exists, and
      # the agent reads it when it appears or changes, without a restart.
      - name: webhook
        secret: {secretName: berth-webhook, optional: true}
---
apiVersion: v1
kind: Service
metadata:
  name: berth-webhooks
  namespace: {{.Namespace}}
spec:
  # Only the leader serves webhooks; it labels its pod while it leads.
  selector: {app.kubernetes.io/name: berth-agent, berth.dev/leader: "true"}
  ports:
  - {name: webhooks, port: 80, targetPort: webhooks}
`))
