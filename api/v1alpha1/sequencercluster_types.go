/*
Copyright 2026 The sequencer-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SequencerClusterSpec is the desired state of a sequencer cluster.
// +kubebuilder:validation:XValidation:rule="!has(self.extraArgs) || !self.extraArgs.exists(a, ['--id', '--chain-id', '--data-dir', '--raft-addr', '--raft-advertise', '--http-addr', '--bootstrap-id', '--initial-cluster-state', '--join', '--api-token-file', '--signing-key-file'].exists(f, a == f || a.startsWith(f + '=')))",message="extraArgs must not set a flag the operator manages (--id, --chain-id, --data-dir, --raft-addr, --raft-advertise, --http-addr, --bootstrap-id, --initial-cluster-state, --join, --api-token-file, --signing-key-file)",fieldPath=".extraArgs"
type SequencerClusterSpec struct {
	// replicas is the number of sequencer nodes, and so of Raft voters once every member is promoted.
	// An odd count is recommended: an even count tolerates no more failures than the odd count below it.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=9
	Replicas *int32 `json:"replicas,omitempty"`

	// image is the sequencer node image.
	// +optional
	// +kubebuilder:default="ghcr.io/seqops/sequencer-node:latest"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// imagePullPolicy is the pull policy of the node container.
	// +optional
	// +kubebuilder:default=IfNotPresent
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// chainID identifies the chain the nodes sequence. It is written into every block and cannot change.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="chainID is immutable: create a new SequencerCluster for another chain"
	ChainID string `json:"chainID"`

	// blockTime is the interval at which the leader produces blocks, as a Go duration (e.g. 100ms).
	// +optional
	// +kubebuilder:default="100ms"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10ms') && duration(self) <= duration('1h')",message="blockTime must be between 10ms and 1h"
	BlockTime string `json:"blockTime,omitempty"`

	// raft holds the Raft timings. The defaults suit a LAN.
	// +optional
	// +kubebuilder:default={}
	Raft RaftSpec `json:"raft,omitempty"`

	// storage describes each node's persistent volume, which holds the Raft log and the chain.
	// +optional
	// +kubebuilder:default={}
	Storage StorageSpec `json:"storage,omitempty"`

	// resources are the compute resources of the node container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// nodeSelector constrains the Kubernetes nodes the pods run on.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations are the pods' tolerations.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity replaces the default affinity, which prefers to spread the pods across Kubernetes nodes.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// podTemplate holds extra settings merged into the pod template.
	// +optional
	PodTemplate *PodTemplateExtras `json:"podTemplate,omitempty"`

	// signingKey is where the block signing key comes from. All members share it: only the leader signs.
	// +optional
	// +kubebuilder:default={generate: true}
	SigningKey *SigningKeySpec `json:"signingKey,omitempty"`

	// tls configures mutual TLS on the Raft transport.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// networkPolicy makes the operator own a NetworkPolicy that admits only the traffic the cluster needs.
	// +optional
	NetworkPolicy *NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// paused stops membership changes, rollouts and switchovers; status keeps updating.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// logLevel is the node's log level.
	// +optional
	// +kubebuilder:default=info
	// +kubebuilder:validation:Enum=debug;info;warn;error
	LogLevel string `json:"logLevel,omitempty"`

	// extraArgs are appended to the node command line. Flags the operator manages are refused.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=256
	ExtraArgs []string `json:"extraArgs,omitempty"`

	// env are extra environment variables of the node container.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Env []corev1.EnvVar `json:"env,omitempty"`
}

// RaftSpec holds Raft timings, as Go durations. Leader election trusts these: the election timeout must not be
// shorter than the heartbeat timeout and the leader lease must not be longer than it (hashicorp/raft refuses both).
// +kubebuilder:validation:XValidation:rule="!has(self.electionTimeout) || !has(self.heartbeatTimeout) || duration(self.electionTimeout) >= duration(self.heartbeatTimeout)",message="raft.electionTimeout must be greater than or equal to raft.heartbeatTimeout",fieldPath=".electionTimeout"
// +kubebuilder:validation:XValidation:rule="!has(self.leaderLeaseTimeout) || !has(self.heartbeatTimeout) || duration(self.leaderLeaseTimeout) <= duration(self.heartbeatTimeout)",message="raft.leaderLeaseTimeout must be less than or equal to raft.heartbeatTimeout",fieldPath=".leaderLeaseTimeout"
type RaftSpec struct {
	// heartbeatTimeout is how long a follower waits without contact from the leader before it starts an election.
	// +optional
	// +kubebuilder:default="100ms"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5ms')",message="raft.heartbeatTimeout must be at least 5ms"
	HeartbeatTimeout string `json:"heartbeatTimeout,omitempty"`

	// electionTimeout is how long a candidate waits for votes before it starts a new election.
	// +optional
	// +kubebuilder:default="400ms"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5ms')",message="raft.electionTimeout must be at least 5ms"
	ElectionTimeout string `json:"electionTimeout,omitempty"`

	// leaderLeaseTimeout is how long a leader stays leader without reaching a quorum.
	// +optional
	// +kubebuilder:default="50ms"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5ms')",message="raft.leaderLeaseTimeout must be at least 5ms"
	LeaderLeaseTimeout string `json:"leaderLeaseTimeout,omitempty"`

	// commitTimeout is how long the leader waits before it sends a heartbeat carrying the commit index.
	// +optional
	// +kubebuilder:default="10ms"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms')",message="raft.commitTimeout must be at least 1ms"
	CommitTimeout string `json:"commitTimeout,omitempty"`
}

// PVCRetentionPolicy says what happens to a node's volume when the node is scaled away or the cluster deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type PVCRetentionPolicy string

const (
	// PVCRetain keeps the volume.
	PVCRetain PVCRetentionPolicy = "Retain"
	// PVCDelete deletes the volume.
	PVCDelete PVCRetentionPolicy = "Delete"
)

// StorageSpec describes each node's persistent volume.
// +kubebuilder:validation:XValidation:rule="has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",message="storage.storageClassName is immutable",fieldPath=".storageClassName"
type StorageSpec struct {
	// size is the requested size of each node's volume. It cannot change: resize the PVCs themselves.
	// +optional
	// +kubebuilder:default="10Gi"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storage.size is immutable: resize the PersistentVolumeClaims directly"
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName is the StorageClass of the volumes; empty uses the cluster's default. It cannot change.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageClassName *string `json:"storageClassName,omitempty"`

	// retentionPolicy says whether a node's volume is kept (Retain) or deleted (Delete) when the node is scaled
	// away and when the SequencerCluster is deleted.
	// +optional
	// +kubebuilder:default=Retain
	RetentionPolicy PVCRetentionPolicy `json:"retentionPolicy,omitempty"`
}

// PodTemplateExtras are settings merged into the node pods.
type PodTemplateExtras struct {
	// labels are added to the pods. Keys under seqops.io/ are reserved for the operator.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('seqops.io/'))",message="podTemplate.labels must not use the reserved prefix seqops.io/"
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are added to the pods. Keys under seqops.io/ are reserved for the operator.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('seqops.io/'))",message="podTemplate.annotations must not use the reserved prefix seqops.io/"
	Annotations map[string]string `json:"annotations,omitempty"`

	// priorityClassName is the pods' PriorityClass.
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// serviceAccountName is the pods' ServiceAccount.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// imagePullSecrets are the pods' image pull secrets.
	// +optional
	// +listType=atomic
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// terminationGracePeriodSeconds is how long a node has to hand leadership over and stop.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`

	// topologySpreadConstraints are added to the pods.
	// +optional
	// +listType=atomic
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
}

// SigningKeySpec names the source of the block signing key: an existing Secret or one the operator generates.
// +kubebuilder:validation:XValidation:rule="has(self.secretRef) != (has(self.generate) && self.generate)",message="signingKey must set exactly one of secretRef or generate: true"
type SigningKeySpec struct {
	// secretRef names a Secret in the cluster's namespace whose key signing.key holds an ed25519 private key
	// as PKCS#8 PEM.
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`

	// generate makes the operator create a Secret <name>-signing-key with a new ed25519 key, once.
	// +optional
	Generate bool `json:"generate,omitempty"`
}

// TLSSpec configures mutual TLS on the Raft transport.
// +kubebuilder:validation:XValidation:rule="!(has(self.secretName) && has(self.issuerRef))",message="tls.secretName and tls.issuerRef are mutually exclusive: set one"
// +kubebuilder:validation:XValidation:rule="!self.enabled || has(self.secretName) || has(self.issuerRef)",message="tls.enabled requires tls.secretName or tls.issuerRef"
type TLSSpec struct {
	// enabled turns on mutual TLS between the Raft members.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// secretName names a Secret of type kubernetes.io/tls with ca.crt, valid for *.<name>-peers.<namespace>.svc.cluster.local.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`

	// issuerRef names a cert-manager issuer; the operator then requests the certificate through a cert-manager
	// Certificate it owns.
	// +optional
	IssuerRef *IssuerReference `json:"issuerRef,omitempty"`
}

// IssuerReference names a cert-manager Issuer or ClusterIssuer.
type IssuerReference struct {
	// name is the issuer's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// kind is Issuer or ClusterIssuer.
	// +optional
	// +kubebuilder:default=Issuer
	// +kubebuilder:validation:Enum=Issuer;ClusterIssuer
	Kind string `json:"kind,omitempty"`

	// group is the issuer's API group.
	// +optional
	// +kubebuilder:default="cert-manager.io"
	Group string `json:"group,omitempty"`
}

// NetworkPolicySpec configures the NetworkPolicy the operator owns for a cluster. When enabled, the node pods
// accept ingress only on the Raft port from each other, and on the node API port (which also serves /metrics)
// from each other, from the operator's pods and from apiClients. Egress is not restricted.
type NetworkPolicySpec struct {
	// enabled makes the operator create and keep the NetworkPolicy <name>-nodes; turning it off deletes it.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// apiClients are further peers allowed to reach the node API port: transaction submitters, the kubectl
	// plugin's pods, a Prometheus scraping /metrics. Each is a NetworkPolicy peer (podSelector and/or
	// namespaceSelector, or ipBlock).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(p, has(p.podSelector) || has(p.namespaceSelector) || has(p.ipBlock))",message="networkPolicy.apiClients: each peer must set podSelector, namespaceSelector or ipBlock"
	// +kubebuilder:validation:XValidation:rule="self.all(p, !has(p.ipBlock) || (!has(p.podSelector) && !has(p.namespaceSelector)))",message="networkPolicy.apiClients: a peer with ipBlock must not also set podSelector or namespaceSelector"
	APIClients []networkingv1.NetworkPolicyPeer `json:"apiClients,omitempty"`
}

// Phase is a one-word summary of the cluster's state.
// +kubebuilder:validation:Enum=Pending;Bootstrapping;Healthy;Degraded;NoQuorum;Scaling;Updating
type Phase string

const (
	// PhasePending: the pods are not running yet.
	PhasePending Phase = "Pending"
	// PhaseBootstrapping: pod 0 is forming the first one-member cluster.
	PhaseBootstrapping Phase = "Bootstrapping"
	// PhaseHealthy: every member is a caught-up voter and there is a leader.
	PhaseHealthy Phase = "Healthy"
	// PhaseDegraded: there is a leader, but a member is missing, unreachable or behind.
	PhaseDegraded Phase = "Degraded"
	// PhaseNoQuorum: the cluster was bootstrapped but no leader is reachable; no block is produced.
	PhaseNoQuorum Phase = "NoQuorum"
	// PhaseScaling: members are being added or removed.
	PhaseScaling Phase = "Scaling"
	// PhaseUpdating: pods are being replaced by a rolling update.
	PhaseUpdating Phase = "Updating"
)

// MemberStatus is what the operator observed of one node.
type MemberStatus struct {
	// name is the pod name.
	Name string `json:"name"`
	// id is the node's Raft server ID; empty while the node is not a member.
	// +optional
	ID string `json:"id,omitempty"`
	// address is the node's Raft address.
	// +optional
	Address string `json:"address,omitempty"`
	// suffrage is Voter, Nonvoter or Staging; empty while the node is not a member.
	// +optional
	Suffrage string `json:"suffrage,omitempty"`
	// state is the Raft state the node reports (Leader, Follower, Candidate, Shutdown); Unreachable when its API
	// does not answer; Failed when, besides, its container keeps exiting with an error (the node refuses to
	// start, e.g. on damaged data): the Degraded condition (reason MemberFailed) quotes why.
	// +optional
	State string `json:"state,omitempty"`
	// height is the node's committed chain height.
	// +optional
	Height int64 `json:"height,omitempty"`
	// lag is how many committed log entries the node has not applied yet.
	// +optional
	Lag int64 `json:"lag,omitempty"`
	// catchingUp is true while the node is behind the leader.
	// +optional
	CatchingUp bool `json:"catchingUp,omitempty"`
	// healthy is the leader's (autopilot's) view of the member, or, without it, reachable and caught up.
	// +optional
	Healthy bool `json:"healthy,omitempty"`
	// lastSeen is when the operator last reached the node (refreshed at most every 30s to keep writes down).
	// +optional
	LastSeen *metav1.Time `json:"lastSeen,omitempty"`
}

// SequencerClusterStatus is the observed state of a sequencer cluster.
type SequencerClusterStatus struct {
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// phase summarises the cluster's state.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// replicas is the number of node pods.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// readyReplicas is the number of ready node pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// ready is readyReplicas/desired replicas, for display.
	// +optional
	Ready string `json:"ready,omitempty"`
	// bootstrapped records that the Raft cluster was formed; from then on no node ever bootstraps again.
	// +optional
	Bootstrapped bool `json:"bootstrapped,omitempty"`
	// leader is the pod name of the Raft leader.
	// +optional
	Leader string `json:"leader,omitempty"`
	// leaderSince is when the operator first saw the current leader.
	// +optional
	LeaderSince *metav1.Time `json:"leaderSince,omitempty"`
	// term is the leader's Raft term.
	// +optional
	Term int64 `json:"term,omitempty"`
	// height is the leader's committed chain height.
	// +optional
	Height int64 `json:"height,omitempty"`
	// commitIndex is the leader's Raft commit index.
	// +optional
	CommitIndex int64 `json:"commitIndex,omitempty"`
	// failureTolerance is how many voters can fail without losing quorum.
	// +optional
	FailureTolerance int32 `json:"failureTolerance,omitempty"`
	// members are the nodes and Raft members as the operator sees them.
	// +optional
	// +listType=map
	// +listMapKey=name
	Members []MemberStatus `json:"members,omitempty"`
	// conditions are Available, Progressing, Degraded and QuorumHealthy.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// SequencerCluster is a highly-available sequencer: a Raft group of sequencer nodes of which only the leader
// produces blocks.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=seqc,categories=seqops
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.ready`
// +kubebuilder:printcolumn:name="Leader",type=string,JSONPath=`.status.leader`
// +kubebuilder:printcolumn:name="Term",type=integer,JSONPath=`.status.term`
// +kubebuilder:printcolumn:name="Height",type=integer,JSONPath=`.status.height`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 52",message="metadata.name must be at most 52 characters: it prefixes the pod, Service and DNS names"
type SequencerCluster struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired cluster.
	// +required
	Spec SequencerClusterSpec `json:"spec"`

	// status is the observed cluster.
	// +optional
	Status SequencerClusterStatus `json:"status,omitempty"`
}

// SequencerClusterList is a list of SequencerClusters.
// +kubebuilder:object:root=true
type SequencerClusterList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the SequencerClusters.
	Items []SequencerCluster `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SequencerCluster{}, &SequencerClusterList{})
}
