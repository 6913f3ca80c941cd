package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Release outcomes.
const (
	ReleasePending    = "Pending"    // applied, health not yet known
	ReleaseHealthy    = "Healthy"    // every object Current
	ReleaseFailed     = "Failed"     // kstatus Failed or not Ready within the health timeout
	ReleaseRolledBack = "RolledBack" // failed, and the agent went back to an earlier release
	ReleaseSuperseded = "Superseded" // a newer release became Healthy
)

// Release triggers.
const (
	TriggerCommit   = "commit"
	TriggerWebhook  = "webhook"
	TriggerRollback = "rollback"
	TriggerManual   = "manual"
	// TriggerRender: the applied commit rendered other manifests (the
	// Application's values or policy, or what its chart reads of the
	// cluster, changed).
	TriggerRender = "render"
)

// ManifestChunk names one Secret holding part of a release's manifests
// (gzip of a YAML stream, split to stay far below the 1 MiB object limit;
// Secrets because manifests may hold Secrets).
type ManifestChunk struct {
	SecretName string `json:"secretName"`
}

// WayBack is the result of rehearsing the rollback from this release to the
// previous healthy one (a server-side dry-run of the old manifests against
// the cluster as it is now).
type WayBack struct {
	// Status: Verified, Blocked or Unknown.
	Status string `json:"status"`
	// ToRelease is the release the way back leads to.
	// +optional
	ToRelease int64 `json:"toRelease,omitempty"`
	// Reason explains a Blocked or Unknown way back.
	// +optional
	Reason string `json:"reason,omitempty"`
}

// ReleaseSpec is the immutable record of one sync that reached the cluster.
type ReleaseSpec struct {
	// Application is the name of the Application (same namespace).
	Application string `json:"application"`
	// Number counts the Application's releases from 1.
	Number int64 `json:"number"`
	// Commit is the Git commit the manifests were rendered from.
	Commit string `json:"commit"`
	// Digest is sha256 of the uncompressed manifest stream.
	Digest string `json:"digest"`
	// Trigger: commit, webhook, rollback, manual or render (the same
	// commit rendered anew).
	Trigger string `json:"trigger"`
	// Renderer: plain, kustomize or helm.
	Renderer string `json:"renderer"`
	// Images are the tags and the digests they resolved to.
	// +optional
	Images []ImagePin `json:"images,omitempty"`
	// Manifests are the Secrets holding the rendered manifests, in order.
	Manifests []ManifestChunk `json:"manifests"`
	// ObjectCount is the number of objects in the manifests.
	ObjectCount int `json:"objectCount"`
	// HelmRelease and HelmVersion name the Helm release revision, for charts.
	// +optional
	HelmRelease string `json:"helmRelease,omitempty"`
	// +optional
	HelmVersion int `json:"helmVersion,omitempty"`
	// RollbackOf is the release number this one restored, for rollbacks.
	// +optional
	RollbackOf int64 `json:"rollbackOf,omitempty"`
	// RolledBackFrom is the commit a rollback rolled away from (the
	// Application stays pinned while Git points at it).
	// +optional
	RolledBackFrom string `json:"rolledBackFrom,omitempty"`
	// Request is the `berth rollback` request a manual rollback answered.
	// +optional
	Request string `json:"request,omitempty"`
	// Snapshot is the data snapshot the Application's pre-sync hook took
	// before this release was applied.
	// +optional
	Snapshot *DataSnapshot `json:"snapshot,omitempty"`
}

// DataSnapshot is the result of a pre-sync data hook, bound to a release.
type DataSnapshot struct {
	// ID names the snapshot; the hook Job received it as $BERTH_SNAPSHOT.
	ID string `json:"id"`
	// Job is the pre-sync Job that took it.
	Job string `json:"job"`
	// TakenAt is when the Job completed.
	// +optional
	TakenAt *metav1.Time `json:"takenAt,omitempty"`
}

// DataRestore records a restore hook run on the way back across a release.
type DataRestore struct {
	// Snapshot is the ID restored.
	Snapshot string `json:"snapshot"`
	// Job is the restore Job.
	Job string `json:"job"`
	// ForRollback is the rollback release that ran it; 0 until that
	// rollback is recorded. A restore whose rollback was given up is
	// named after the next rollback that crosses it.
	ForRollback int64 `json:"forRollback,omitempty"`
	// At is when the Job completed.
	// +optional
	At *metav1.Time `json:"at,omitempty"`
}

// ReleaseStatus is the outcome of a release.
type ReleaseStatus struct {
	// Health: Pending, Healthy, Failed, RolledBack or Superseded.
	// +optional
	Health string `json:"health,omitempty"`
	// Reason explains the outcome in words.
	// +optional
	Reason string `json:"reason,omitempty"`
	// AppliedAt is when the manifests were applied (the release's
	// creation), recorded with the first status write (normally the
	// verdict).
	// +optional
	AppliedAt *metav1.Time `json:"appliedAt,omitempty"`
	// FinishedAt is when the outcome was decided.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// WayBack is the rehearsed rollback to the previous healthy release.
	// +optional
	WayBack *WayBack `json:"wayBack,omitempty"`
	// Retries counts the retries of a failed StatefulSet release
	// (rollback.statefulSets: Retry).
	// +optional
	Retries int `json:"retries,omitempty"`
	// Restored records the restore hook that undid this release's data
	// changes on a rollback.
	// +optional
	Restored *DataRestore `json:"restored,omitempty"`
}

// Release is one numbered, immutable sync of an Application: what was
// applied (manifests, images by digest, commit) and how it ended.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rel,categories=berth
// +kubebuilder:printcolumn:name="App",type=string,JSONPath=`.spec.application`
// +kubebuilder:printcolumn:name="Rev",type=integer,JSONPath=`.spec.number`
// +kubebuilder:printcolumn:name="Commit",type=string,JSONPath=`.spec.commit`
// +kubebuilder:printcolumn:name="Trigger",type=string,JSONPath=`.spec.trigger`
// +kubebuilder:printcolumn:name="Health",type=string,JSONPath=`.status.health`
// +kubebuilder:printcolumn:name="Way back",type=string,JSONPath=`.status.wayBack.status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Release struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ReleaseSpec `json:"spec,omitempty"`
	// Status starts as Pending: the API server defaults it, so that
	// recording a release is one write (the first status write is
	// normally the verdict).
	// +kubebuilder:default={health: "Pending", reason: "applied, waiting for health"}
	Status ReleaseStatus `json:"status,omitempty"`
}

// ReleaseList is a list of Releases.
//
// +kubebuilder:object:root=true
type ReleaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Release `json:"items"`
}

// ReleaseApplicationLabel on a Release (and its manifest Secrets) names its
// Application.
const ReleaseApplicationLabel = "berth.dev/application"
