package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Condition types and reasons used in Application status.
const (
	// ConditionReady is True when the last revision is applied and every
	// owned object is healthy (kstatus Current).
	ConditionReady = "Ready"
	// ConditionReconciling is True while the agent works towards a revision.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when retrying cannot help: a rejected
	// revision, a missing permission, a broken spec.
	ConditionStalled = "Stalled"
	// ConditionDrifted is True when live objects differ from Git.
	ConditionDrifted = "Drifted"
)

// DriftMode says what the agent does when live objects differ from Git.
// +kubebuilder:validation:Enum=heal;detect;off
type DriftMode string

// Drift modes.
const (
	DriftHeal   DriftMode = "heal"
	DriftDetect DriftMode = "detect"
	DriftOff    DriftMode = "off"
)

// GitSource says where the desired state lives.
type GitSource struct {
	// URL of the repository: https://, http://, ssh:// or scp-like
	// user@host:path. Local paths, file:// and git:// are refused.
	// +kubebuilder:validation:MinLength=1
	URL string `json:"url"`
	// Branch to follow; default "main" when neither tag nor commit is set.
	// +optional
	Branch string `json:"branch,omitempty"`
	// Tag to deploy.
	// +optional
	Tag string `json:"tag,omitempty"`
	// Commit (full SHA: 40 hexadecimal digits, or 64 for a SHA-256
	// repository) to deploy.
	// +kubebuilder:validation:Pattern=`^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$`
	// +optional
	Commit string `json:"commit,omitempty"`
	// Path inside the repository; default the root.
	// +optional
	Path string `json:"path,omitempty"`
	// SecretRef names a Secret in the Application's namespace with either
	// `username` + `password` (or `token`) for HTTPS, or `identity` (a
	// private SSH key) and `known_hosts` for SSH. Read-only credentials are
	// all berth needs.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// Interval between polls; default 1m. Webhooks trigger a fetch at once.
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	Name string `json:"name"`
}

// HelmSpec configures Helm rendering when the path holds a Chart.yaml.
type HelmSpec struct {
	// ReleaseName defaults to the Application's name.
	// +optional
	ReleaseName string `json:"releaseName,omitempty"`
	// ValuesFiles are paths relative to the chart, merged in order. A file
	// named values-<environment>.yaml next to the chart is added after these
	// when it exists.
	// +optional
	ValuesFiles []string `json:"valuesFiles,omitempty"`
	// Values are inline values merged last.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	Values *runtime.RawExtension `json:"values,omitempty"`
}

// SyncPolicy says how the agent follows Git.
type SyncPolicy struct {
	// Automated applies every new revision; when false the agent only
	// reports what would change until `berth sync` is run.
	// +optional
	// +kubebuilder:default=true
	Automated *bool `json:"automated,omitempty"`
	// Prune deletes objects removed from Git, by a sync or a rollback (never
	// PersistentVolumeClaims, PersistentVolumes, Namespaces or
	// CustomResourceDefinitions unless they carry the annotation
	// berth.dev/prune: "true").
	// +optional
	// +kubebuilder:default=true
	Prune *bool `json:"prune,omitempty"`
	// Drift: heal (re-apply), detect (report only) or off.
	// +optional
	// +kubebuilder:default=heal
	Drift DriftMode `json:"drift,omitempty"`
	// AllowEmpty lets a revision that renders no object at all replace one
	// that did (pruning everything). Without it such a revision is
	// refused: a wrong path, or an overlay that selects nothing, would
	// otherwise delete the whole app.
	// +optional
	AllowEmpty bool `json:"allowEmpty,omitempty"`
}

// ApplicationSpec is the desired state of an Application.
type ApplicationSpec struct {
	Source GitSource `json:"source"`
	// Destination namespace for namespaced objects that name none.
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
	// Environment name (staging, production ...): selects
	// values-<environment>.yaml for Helm and is shown everywhere.
	// +optional
	Environment string `json:"environment,omitempty"`
	// ServiceAccountName in the destination namespace that every write is
	// impersonated as. Empty means the agent's --default-service-account;
	// with neither the Application is refused. Outside the agent's
	// --trusted-namespaces the destination must be the Application's own
	// namespace, and the name bare.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// Helm options, used when the path holds a chart.
	// +optional
	Helm *HelmSpec `json:"helm,omitempty"`
	// +optional
	SyncPolicy SyncPolicy `json:"syncPolicy,omitempty"`
	// HealthTimeout bounds the wait for owned objects to become healthy;
	// default 5m.
	// +optional
	HealthTimeout *metav1.Duration `json:"healthTimeout,omitempty"`
	// Policy overrides the repository's .berth/policy.yaml for this
	// Application: rule modes, exceptions, image settings (see
	// docs/policy.md). Same shape as the file.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	Policy *runtime.RawExtension `json:"policy,omitempty"`
	// ImagePullSecrets (kubernetes.io/dockerconfigjson Secrets in the
	// Application's namespace) authenticate tag-to-digest resolution.
	// +optional
	ImagePullSecrets []LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// Rollback configures release history and automatic rollback.
	// +optional
	Rollback RollbackPolicy `json:"rollback,omitempty"`
	// Suspend stops reconciliation.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// RollbackPolicy configures releases and rollbacks.
type RollbackPolicy struct {
	// Automatic re-applies the last Healthy release when a new release
	// fails (kstatus Failed, or not Ready within the health timeout).
	// +optional
	// +kubebuilder:default=true
	Automatic *bool `json:"automatic,omitempty"`
	// HistoryLimit bounds the Release records kept; default 10.
	// +optional
	// +kubebuilder:validation:Minimum=2
	HistoryLimit int `json:"historyLimit,omitempty"`
	// StatefulSets chooses what happens when a failed release contains a
	// StatefulSet: Rollback (the default) re-applies the last Healthy
	// release like any other; Retry keeps the failed release, re-applies it
	// and waits a full health timeout again, up to Retries times, then
	// stops with Stalled. Rolling a StatefulSet back does not roll back what
	// its new version did to its volumes; Retry leaves that call to people.
	// +optional
	// +kubebuilder:validation:Enum=Rollback;Retry
	StatefulSets StatefulSetFailurePolicy `json:"statefulSets,omitempty"`
	// Retries bounds Retry; default 3.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Retries int `json:"retries,omitempty"`
}

// StatefulSetFailurePolicy is what a failed release with a StatefulSet
// leads to.
type StatefulSetFailurePolicy string

// StatefulSetFailurePolicy values.
const (
	StatefulSetRollback StatefulSetFailurePolicy = "Rollback"
	StatefulSetRetry    StatefulSetFailurePolicy = "Retry"
)

// Pin holds an Application on one release while Git still points at the
// commit it was rolled back from. A newer commit, or `berth unpin`, ends it.
type Pin struct {
	// Release is the pinned release number.
	Release int64 `json:"release"`
	// FromCommit is the commit rolled away from: it is not re-applied while
	// the pin holds.
	FromCommit string `json:"fromCommit"`
	// Reason says why (automatic rollback, `berth rollback`).
	Reason string `json:"reason"`
	// Since is when the pin was set.
	Since metav1.Time `json:"since"`
}

// UnfinishedRollback is a `berth rollback` that failed after its restore
// hook had run. A new commit, a `berth sync` asked after the failure,
// `berth unpin` or a `berth rollback` that succeeds ends it.
type UnfinishedRollback struct {
	// Target is the release the rollback goes back to.
	Target int64 `json:"target"`
	// FromRelease is the release that ran when it failed.
	FromRelease int64 `json:"fromRelease"`
	// FromCommit is the commit Git pointed at when it failed.
	FromCommit string `json:"fromCommit"`
	// Request is the berth.dev/rollback value it answered.
	// +optional
	Request string `json:"request,omitempty"`
	// SyncRequest is the berth.dev/sync-requested value standing when it
	// failed: only another one ends it.
	// +optional
	SyncRequest string `json:"syncRequest,omitempty"`
	// Held: trying again cannot change the failure, so it is not retried
	// and nothing is applied.
	// +optional
	Held bool `json:"held,omitempty"`
	// Message says why it failed and what happens next.
	Message string `json:"message"`
}

// UnrecordedSync is a revision applied without its release record.
type UnrecordedSync struct {
	// Commit and Digest are the revision's commit and manifest digest.
	Commit string `json:"commit"`
	Digest string `json:"digest"`
	// Snapshot is what its pre-sync hook took; the retried record reuses it.
	Snapshot DataSnapshot `json:"snapshot"`
	// FromRelease is the release that ran when it was applied.
	FromRelease int64 `json:"fromRelease"`
}

// ObjectRef identifies one object owned by an Application.
type ObjectRef struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// ImagePin records the digest a tag resolved to.
type ImagePin struct {
	// Tag is the canonical reference, e.g. "registry.example.test/web:1.2.0".
	Tag string `json:"tag"`
	// Digest is "sha256:...".
	Digest string `json:"digest"`
}

// DriftSummary reports live objects that differ from Git.
type DriftSummary struct {
	// Objects that differ or are missing, as "Kind namespace/name".
	// +optional
	Objects []string `json:"objects,omitempty"`
	// DetectedAt is when drift was last seen.
	// +optional
	DetectedAt *metav1.Time `json:"detectedAt,omitempty"`
	// Healed counts the re-applies drift caused.
	// +optional
	Healed int64 `json:"healed,omitempty"`
}

// ApplicationStatus is the observed state of an Application.
type ApplicationStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// LastFetchedRevision is the newest commit seen in Git.
	// +optional
	LastFetchedRevision string `json:"lastFetchedRevision,omitempty"`
	// LastAppliedRevision is the commit whose manifests run in the cluster.
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`
	// LastAppliedDigest identifies the rendered manifests of the last
	// applied revision; a new commit that renders the same manifests (a
	// change to another app of the repository) needs no apply.
	// +optional
	LastAppliedDigest string `json:"lastAppliedDigest,omitempty"`
	// LastAppliedAt is when it was applied.
	// +optional
	LastAppliedAt *metav1.Time `json:"lastAppliedAt,omitempty"`
	// Renderer used for the last revision: plain, kustomize or helm.
	// +optional
	Renderer string `json:"renderer,omitempty"`
	// Health of the owned objects: Healthy, Progressing, Degraded, Unknown.
	// +optional
	Health string `json:"health,omitempty"`
	// Sync state: Synced, OutOfSync, Failed, or Pinned (held at a release
	// by a rollback while Git is elsewhere).
	// +optional
	Sync string `json:"sync,omitempty"`
	// Inventory lists the objects the Application owns.
	// +optional
	Inventory []ObjectRef `json:"inventory,omitempty"`
	// Drift summary.
	// +optional
	Drift *DriftSummary `json:"drift,omitempty"`
	// Images are the tags of the applied revision and the digests they were
	// pinned to; a tag that later points elsewhere is refused (tag-moved).
	// +optional
	Images []ImagePin `json:"images,omitempty"`
	// CurrentRelease is the number of the release running now.
	// +optional
	CurrentRelease int64 `json:"currentRelease,omitempty"`
	// Pin, when set, holds the Application on a release (see Pin).
	// +optional
	Pin *Pin `json:"pin,omitempty"`
	// UnfinishedRollback, when set, is a `berth rollback` that failed
	// after its data restore: it is retried (or the Application is held)
	// instead of re-applying the release it rolled away from over the
	// restored data, by this agent or one restarted in between.
	// +optional
	UnfinishedRollback *UnfinishedRollback `json:"unfinishedRollback,omitempty"`
	// UnrecordedSync, when set, is a revision applied after its pre-sync
	// hook took a snapshot, whose release could not be recorded yet: its
	// data changes are live and no release says so. A rollback is refused
	// meanwhile, by this agent or one restarted in between.
	// +optional
	UnrecordedSync *UnrecordedSync `json:"unrecordedSync,omitempty"`
	// LastHandledRollback and LastHandledUnpin echo the berth.dev/rollback
	// and berth.dev/unpin annotations once handled.
	// +optional
	LastHandledRollback string `json:"lastHandledRollback,omitempty"`
	// +optional
	LastHandledUnpin string `json:"lastHandledUnpin,omitempty"`
	// LastHandledSyncRequest echoes the berth.dev/sync-requested annotation
	// that was handled last.
	// +optional
	LastHandledSyncRequest string `json:"lastHandledSyncRequest,omitempty"`
}

// Application is one app whose desired state the agent pulls from Git.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=app;apps,categories=berth
// +kubebuilder:printcolumn:name="Env",type=string,JSONPath=`.spec.environment`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.lastAppliedRevision`,description="applied commit"
// +kubebuilder:printcolumn:name="Health",type=string,JSONPath=`.status.health`
// +kubebuilder:printcolumn:name="Sync",type=string,JSONPath=`.status.sync`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Application struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ApplicationSpec   `json:"spec,omitempty"`
	Status ApplicationStatus `json:"status,omitempty"`
}

// ApplicationList is a list of Applications.
//
// +kubebuilder:object:root=true
type ApplicationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Application `json:"items"`
}

// Annotations and labels berth reads or writes.
const (
	// SyncRequestedAnnotation on an Application asks for a sync now; its
	// value (any string, usually a timestamp) is echoed in
	// status.lastHandledSyncRequest once handled.
	SyncRequestedAnnotation = "berth.dev/sync-requested"
	// PruneAnnotation "true" on a PersistentVolumeClaim or Namespace allows
	// berth to delete it when it is removed from Git; "false" on any object
	// keeps it.
	PruneAnnotation = "berth.dev/prune"
	// RollbackAnnotation "N@token" asks the agent to roll back to release N
	// (`berth rollback`); the token makes each request distinct.
	RollbackAnnotation = "berth.dev/rollback"
	// UnpinAnnotation (any token) asks the agent to follow Git again.
	UnpinAnnotation = "berth.dev/unpin"
	// HookAnnotation marks a Job of an Application's manifests as a data
	// hook instead of a workload: "pre-sync" runs before each new release
	// is applied and its snapshot is bound to that release; "restore" runs
	// when a rollback crosses that release (see docs/releases.md).
	HookAnnotation = "berth.dev/hook"
	// OwnerNameLabel and OwnerNamespaceLabel mark every object an
	// Application applied.
	OwnerNameLabel      = "app.berth.dev/name"
	OwnerNamespaceLabel = "app.berth.dev/namespace"
	// CleanupFinalizer is set by the agent on every Application it
	// reconciles: when the Application is deleted, the agent prunes what
	// it applied (as a sync prunes what Git dropped, with the same
	// protections) before letting it go; suspended or with prune off, it
	// keeps everything.
	CleanupFinalizer = "berth.dev/cleanup"
	// LeaderLabel ("true") marks the agent pod that holds the leader
	// lease: the only replica that reconciles and receives webhooks, and
	// the one the install's webhook Service selects.
	LeaderLabel = "berth.dev/leader"
)
