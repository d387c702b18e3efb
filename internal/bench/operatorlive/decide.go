package operatorlive

import (
	corev1 "k8s.io/api/core/v1"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// healthyAt reports whether sc describes its current spec as Healthy with exactly replicas ready pods,
// all of them voters, and a leader: the end of a create or scale operation.
func healthyAt(sc *seqv1.SequencerCluster, replicas int32) bool {
	if sc == nil || sc.Status.ObservedGeneration != sc.Generation || sc.Status.Phase != seqv1.PhaseHealthy ||
		sc.Status.Leader == "" || sc.Status.ReadyReplicas != replicas || len(sc.Status.Members) != int(replicas) {
		return false
	}
	for _, m := range sc.Status.Members {
		if m.Suffrage != nodeapi.SuffrageVoter {
			return false
		}
	}
	return true
}

// memberSuffrage is the suffrage status.members gives pod, empty when it is not listed or not a member.
func memberSuffrage(sc *seqv1.SequencerCluster, pod string) string {
	if sc == nil {
		return ""
	}
	for _, m := range sc.Status.Members {
		if m.Name == pod {
			return m.Suffrage
		}
	}
	return ""
}

// leaderLabel reports whether pod leader carries the leader role label (onLeader) and whether it is the
// only pod that does (exclusive): what the leader Service needs to route to it alone.
func leaderLabel(pods map[string]*corev1.Pod, leader string) (onLeader, exclusive bool) {
	exclusive = true
	for name, p := range pods {
		if p.Labels[seqv1.LabelRole] != seqv1.RoleLeader {
			continue
		}
		if name == leader {
			onLeader = true
		} else {
			exclusive = false
		}
	}
	return onLeader, onLeader && exclusive
}

// podReady reports the pod's Ready condition.
func podReady(p *corev1.Pod) bool {
	if p == nil || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// restarts is the sum of the pod's container restart counts.
func restarts(p *corev1.Pod) int32 {
	if p == nil {
		return 0
	}
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}
