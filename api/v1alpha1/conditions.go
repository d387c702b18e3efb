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

// Condition types of a SequencerCluster.
const (
	// ConditionAvailable is True while a leader produces blocks and is reachable.
	ConditionAvailable = "Available"
	// ConditionProgressing is True while the operator bootstraps, scales, rolls out or switches over.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True while a desired member is missing, unreachable, failed, not a voter or behind.
	ConditionDegraded = "Degraded"
	// ConditionQuorumHealthy is True while the voters can lose at least one member without losing quorum,
	// or, for a one-member cluster, while that member leads.
	ConditionQuorumHealthy = "QuorumHealthy"
)

// Condition reasons.
const (
	ReasonPodsPending         = "PodsPending"
	ReasonBootstrapping       = "Bootstrapping"
	ReasonLeaderElected       = "LeaderElected"
	ReasonNoLeader            = "NoLeader"
	ReasonQuorumLost          = "QuorumLost"
	ReasonNoFailureTolerance  = "NoFailureTolerance"
	ReasonQuorumHealthy       = "FailureTolerant"
	ReasonSingleMember        = "SingleMember"
	ReasonAllMembersHealthy   = "AllMembersHealthy"
	ReasonMembersUnhealthy    = "MembersUnhealthy"
	ReasonMemberFailed        = "MemberFailed"
	ReasonScalingUp           = "ScalingUp"
	ReasonScalingDown         = "ScalingDown"
	ReasonRollingUpdate       = "RollingUpdate"
	ReasonSwitchover          = "Switchover"
	ReasonSwitchoverRejected  = "SwitchoverRejected"
	ReasonRecovery            = "Recovery"
	ReasonRecoveryRejected    = "RecoveryRejected"
	ReasonPaused              = "Paused"
	ReasonReconciled          = "Reconciled"
	ReasonWaitingForMembers   = "WaitingForMembers"
	ReasonStatefulSetNotFound = "StatefulSetNotFound"
	// ReasonWaitingForTLSSecret: spec.tls names a Secret (or cert-manager has not issued it yet) that is missing
	// or lacks tls.crt, tls.key or ca.crt; the pods are not started until it is complete.
	ReasonWaitingForTLSSecret = "WaitingForTLSSecret"
)

// Values of status.members[].state besides the Raft states a node reports (Leader, Follower, Candidate,
// Shutdown).
const (
	// MemberStateUnreachable: the node's API does not answer.
	MemberStateUnreachable = "Unreachable"
	// MemberStateFailed: the node does not answer and its container keeps exiting with an error (it refuses to
	// start, e.g. on damaged data); the Degraded condition and a MemberFailed event carry its termination
	// message. The operator does not replace it by itself: docs/runbook.md says how.
	MemberStateFailed = "Failed"
)

// Labels and annotations the operator sets or reads.
const (
	// LabelCluster names the SequencerCluster a pod or object belongs to.
	LabelCluster = "seqops.io/cluster"
	// LabelRole is "leader" on the Raft leader's pod and "follower" on the others; the leader Service selects it.
	LabelRole = "seqops.io/role"
	// AnnotationTransferLeaderTo asks the operator to hand leadership to the named pod (a switchover).
	AnnotationTransferLeaderTo = "seqops.io/transfer-leader-to"
	// AnnotationRecoverFrom asks the operator to recover a cluster that lost its quorum from the named pod, the
	// most up-to-date survivor: that node restarts with a Raft configuration naming only itself, leads again
	// from its own log, and the operator adds the other members back as non-voters. It is acted on only while
	// no node leads, and removed when done or refused. Nothing triggers a recovery automatically.
	AnnotationRecoverFrom = "seqops.io/recover-from"
	// AnnotationTemplateHash on a pod is the hash of the pod template it was created from.
	AnnotationTemplateHash = "seqops.io/template-hash"
)

// Values of LabelRole.
const (
	RoleLeader   = "leader"
	RoleFollower = "follower"
)

// DesiredReplicas is spec.replicas with its default applied.
func (c *SequencerCluster) DesiredReplicas() int32 {
	if c.Spec.Replicas == nil {
		return 3
	}
	return *c.Spec.Replicas
}
