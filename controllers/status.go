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

package controllers

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// Status is computed by pure functions from the pass's observation and decision, with an injected clock, so it
// can be table-tested and so that the same observation always yields the same status (no-op writes are skipped).

// lastSeenRefresh is how stale status.members[].lastSeen may get before it is written again: refreshing it on
// every pass would turn every pass into a status write.
const lastSeenRefresh = 30 * time.Second

// statusInput is what the status functions look at.
type statusInput struct {
	Generation int64
	Previous   seqv1.SequencerClusterStatus
	Plan       planInput
	Step       step
	// Rejection is the message of a switchover or recovery request refused in this pass.
	Rejection string
	// RejectionReason is the condition reason for Rejection (SwitchoverRejected when empty).
	RejectionReason string
	Now             time.Time
}

func (in statusInput) bootstrapped() bool {
	return in.Plan.Bootstrapped || in.Step.Kind == stepMarkBootstrapped
}

// voterHealth counts the voters of the leader's configuration and how many of them are healthy.
func voterHealth(p planInput) (voters, healthy int) {
	for _, m := range p.Config.Servers {
		if m.Suffrage != nodeapi.SuffrageVoter {
			continue
		}
		voters++
		if p.healthy(m.ID) {
			healthy++
		}
	}
	return voters, healthy
}

// failureTolerance is how many voters can fail without losing quorum: autopilot's figure when the leader
// serves it, otherwise healthy voters minus the quorum size.
func failureTolerance(p planInput) int32 {
	if p.Leader == "" {
		return 0
	}
	if p.Health != nil {
		return int32(max(p.Health.FailureTolerance, 0))
	}
	voters, healthy := voterHealth(p)
	return int32(max(healthy-(voters/2+1), 0))
}

// unhealthyMembers lists, for the desired ordinals, every pod that is missing, not ready, not a voter or not
// healthy, with the reason.
func unhealthyMembers(p planInput) []string {
	var out []string
	for ord := 0; ord < p.Desired; ord++ {
		id := p.pod(ord)
		pv, m := p.Pods[id], p.member(id)
		switch {
		case !pv.Exists:
			out = append(out, id+" has no pod")
		case pv.Failure != "":
			out = append(out, id+" failed: "+pv.Failure)
		case pv.Node == nil:
			out = append(out, id+" does not answer")
		case m == nil:
			out = append(out, id+" is not a Raft member")
		case m.Suffrage != nodeapi.SuffrageVoter:
			out = append(out, fmt.Sprintf("%s is a %s", id, m.Suffrage))
		case pv.Node.CatchingUp:
			out = append(out, fmt.Sprintf("%s is catching up (lag %d)", id, pv.Node.Lag))
		case !p.healthy(id):
			out = append(out, id+" is unhealthy")
		case !pv.Ready:
			out = append(out, id+" is not ready")
		}
	}
	return out
}

// failedMembers lists, for the desired ordinals, every pod whose node keeps failing, with the reason.
func failedMembers(p planInput) []string {
	var out []string
	for ord := 0; ord < p.Desired; ord++ {
		if id := p.pod(ord); p.Pods[id].Exists && p.Pods[id].Failure != "" {
			out = append(out, id+" failed: "+p.Pods[id].Failure)
		}
	}
	return out
}

// computePhase is the one-word summary.
func computePhase(in statusInput) seqv1.Phase {
	p := in.Plan
	exists := false
	for _, pv := range p.Pods {
		exists = exists || pv.Exists
	}
	switch {
	case !p.StsExists || !exists:
		return seqv1.PhasePending
	case !in.bootstrapped() || in.Step.Activity == activityBootstrapping:
		return seqv1.PhaseBootstrapping
	case p.Leader == "":
		return seqv1.PhaseNoQuorum
	case in.Step.Activity == activityScalingUp || in.Step.Activity == activityScalingDown:
		return seqv1.PhaseScaling
	case in.Step.Activity == activityUpdating:
		return seqv1.PhaseUpdating
	case len(unhealthyMembers(p)) > 0:
		return seqv1.PhaseDegraded
	default:
		return seqv1.PhaseHealthy
	}
}

// computeConditions returns Available, Progressing, Degraded and QuorumHealthy.
func computeConditions(in statusInput) []metav1.Condition {
	p := in.Plan
	cond := func(t string, ok bool, reason, msg string) metav1.Condition {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: in.Generation}
	}
	var available, quorum, degraded, progressing metav1.Condition

	switch {
	case p.Leader != "":
		term := uint64(0)
		if n := p.Pods[p.Leader].Node; n != nil {
			term = n.Term
		}
		available = cond(seqv1.ConditionAvailable, true, seqv1.ReasonLeaderElected, fmt.Sprintf("%s leads in term %d", p.Leader, term))
	case !in.bootstrapped():
		available = cond(seqv1.ConditionAvailable, false, seqv1.ReasonBootstrapping, "the Raft cluster has not been formed yet")
	default:
		available = cond(seqv1.ConditionAvailable, false, seqv1.ReasonNoLeader, "no node reports itself leader: no blocks are produced")
	}

	voters, healthy := voterHealth(p)
	ft := failureTolerance(p)
	switch {
	case !in.bootstrapped():
		quorum = cond(seqv1.ConditionQuorumHealthy, false, seqv1.ReasonBootstrapping, "the Raft cluster has not been formed yet")
	case p.Leader == "":
		quorum = cond(seqv1.ConditionQuorumHealthy, false, seqv1.ReasonQuorumLost,
			"no leader is reachable; see docs/operator.md for recovering a cluster that lost quorum")
	case p.Desired == 1 && voters == 1 && healthy == 1:
		quorum = cond(seqv1.ConditionQuorumHealthy, true, seqv1.ReasonSingleMember, "one voter by design: it tolerates no failure")
	case ft >= 1:
		quorum = cond(seqv1.ConditionQuorumHealthy, true, seqv1.ReasonQuorumHealthy,
			fmt.Sprintf("%d of %d voters healthy; %d may fail without losing quorum", healthy, voters, ft))
	default:
		quorum = cond(seqv1.ConditionQuorumHealthy, false, seqv1.ReasonNoFailureTolerance,
			fmt.Sprintf("%d of %d voters healthy; one more failure loses quorum", healthy, voters))
	}

	switch bad, failed := unhealthyMembers(p), failedMembers(p); {
	case in.bootstrapped() && p.Leader == "":
		degraded = cond(seqv1.ConditionDegraded, true, seqv1.ReasonQuorumLost, strings.Join(append([]string{"no leader is reachable"}, failed...), "; "))
	case len(failed) > 0:
		// Before the others: a node that refuses to start waits for a human, even while bootstrapping.
		degraded = cond(seqv1.ConditionDegraded, true, seqv1.ReasonMemberFailed, strings.Join(bad, "; "))
	case !in.bootstrapped():
		degraded = cond(seqv1.ConditionDegraded, false, seqv1.ReasonBootstrapping, "the Raft cluster has not been formed yet")
	case len(bad) > 0:
		degraded = cond(seqv1.ConditionDegraded, true, seqv1.ReasonMembersUnhealthy, strings.Join(bad, "; "))
	default:
		degraded = cond(seqv1.ConditionDegraded, false, seqv1.ReasonAllMembersHealthy,
			fmt.Sprintf("all %d members are healthy voters", p.Desired))
	}

	prev := meta.FindStatusCondition(in.Previous.Conditions, seqv1.ConditionProgressing)
	switch {
	case in.Rejection != "":
		reason := in.RejectionReason
		if reason == "" {
			reason = seqv1.ReasonSwitchoverRejected
		}
		progressing = cond(seqv1.ConditionProgressing, false, reason, in.Rejection)
	case p.Paused && in.bootstrapped():
		progressing = cond(seqv1.ConditionProgressing, false, seqv1.ReasonPaused, "spec.paused is set: membership changes, rollouts and switchovers are frozen")
	case in.Step.Activity != activityNone:
		progressing = cond(seqv1.ConditionProgressing, true, activityReason(in.Step.Activity), in.Step.Message)
	case p.Leader == "" && in.bootstrapped():
		progressing = cond(seqv1.ConditionProgressing, false, seqv1.ReasonQuorumLost, in.Step.Message)
	case prev != nil && prev.Reason == seqv1.ReasonSwitchoverRejected:
		// Keep telling why the last switchover request was refused until something else happens.
		progressing = cond(seqv1.ConditionProgressing, false, prev.Reason, prev.Message)
	default:
		progressing = cond(seqv1.ConditionProgressing, false, seqv1.ReasonReconciled, "the cluster matches the spec")
	}

	conds := slices.Clone(in.Previous.Conditions)
	now := metav1.NewTime(in.Now.Truncate(time.Second))
	for _, c := range []metav1.Condition{available, progressing, degraded, quorum} {
		c.LastTransitionTime = now
		meta.SetStatusCondition(&conds, c)
	}
	return conds
}

func activityReason(a activity) string {
	switch a {
	case activityBootstrapping:
		return seqv1.ReasonBootstrapping
	case activityScalingUp:
		return seqv1.ReasonScalingUp
	case activityScalingDown:
		return seqv1.ReasonScalingDown
	case activityUpdating:
		return seqv1.ReasonRollingUpdate
	case activityRecovering:
		return seqv1.ReasonRecovery
	default:
		return seqv1.ReasonSwitchover
	}
}

// computeMembers lists every pod of the cluster and every Raft member, by ordinal.
func computeMembers(in statusInput) []seqv1.MemberStatus {
	p := in.Plan
	names := map[string]bool{}
	for name, pv := range p.Pods {
		if pv.Exists || pv.Node != nil {
			names[name] = true
		}
	}
	for _, m := range p.Config.Servers {
		names[m.ID] = true
	}
	prev := map[string]seqv1.MemberStatus{}
	for _, m := range in.Previous.Members {
		prev[m.Name] = m
	}
	now := in.Now.Truncate(time.Second)
	out := make([]seqv1.MemberStatus, 0, len(names))
	for name := range names {
		ms := seqv1.MemberStatus{Name: name, State: seqv1.MemberStateUnreachable, LastSeen: prev[name].LastSeen}
		if p.Pods[name].Failure != "" {
			ms.State = seqv1.MemberStateFailed
		}
		if m := p.member(name); m != nil {
			ms.ID, ms.Address, ms.Suffrage = m.ID, m.Address, m.Suffrage
		}
		if n := p.Pods[name].Node; n != nil {
			ms.State = n.State
			ms.Height = int64(n.Height)
			ms.Lag = int64(n.Lag)
			ms.CatchingUp = n.CatchingUp
			ms.Healthy = ms.Suffrage != "" && p.healthy(name)
			if ms.Address == "" {
				ms.Address = n.Address
			}
			if ms.LastSeen == nil || now.Sub(ms.LastSeen.Time) >= lastSeenRefresh {
				ms.LastSeen = &metav1.Time{Time: now}
			}
		}
		out = append(out, ms)
	}
	slices.SortFunc(out, func(a, b seqv1.MemberStatus) int {
		oa, ob := parseOrdinal(p.Name, a.Name), parseOrdinal(p.Name, b.Name)
		if oa != ob {
			return oa - ob
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// computeStatus is the whole status of a pass.
func computeStatus(in statusInput) seqv1.SequencerClusterStatus {
	p := in.Plan
	st := seqv1.SequencerClusterStatus{
		ObservedGeneration: in.Generation,
		Phase:              computePhase(in),
		Bootstrapped:       in.bootstrapped(),
		Leader:             p.Leader,
		FailureTolerance:   failureTolerance(p),
		Members:            computeMembers(in),
		Conditions:         computeConditions(in),
	}
	for _, pv := range p.Pods {
		if pv.Exists {
			st.Replicas++
			if pv.Ready {
				st.ReadyReplicas++
			}
		}
	}
	st.Ready = fmt.Sprintf("%d/%d", st.ReadyReplicas, p.Desired)
	if p.Leader != "" {
		if in.Previous.Leader == p.Leader && in.Previous.LeaderSince != nil {
			st.LeaderSince = in.Previous.LeaderSince
		} else {
			st.LeaderSince = &metav1.Time{Time: in.Now.Truncate(time.Second)}
		}
	}
	if n := p.Pods[p.Leader].Node; p.Leader != "" && n != nil {
		st.Term, st.Height, st.CommitIndex = int64(n.Term), int64(n.Height), int64(n.CommitIndex)
	} else {
		// Without a leader, show the furthest any node got.
		for _, pv := range p.Pods {
			if pv.Node != nil {
				st.Term = max(st.Term, int64(pv.Node.Term))
				st.Height = max(st.Height, int64(pv.Node.Height))
				st.CommitIndex = max(st.CommitIndex, int64(pv.Node.CommitIndex))
			}
		}
	}
	return st
}
