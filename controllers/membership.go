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
	"strconv"

	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// This file is the membership planner: a pure function from what the operator observed to the one step it
// takes in this pass. Every step is chosen from observation alone (Raft configuration, pods, StatefulSet), never
// from memory of an earlier pass, so an operator that crashed between two steps simply plans the next one.

// stepKind is the action of a pass.
type stepKind string

const (
	stepWait               stepKind = ""
	stepMarkBootstrapped   stepKind = "MarkBootstrapped"
	stepAddMember          stepKind = "AddMember"
	stepRemoveMember       stepKind = "RemoveMember"
	stepTransferLeadership stepKind = "TransferLeadership"
	stepScaleStatefulSet   stepKind = "ScaleStatefulSet"
	stepDeleteVolume       stepKind = "DeleteVolume"
	stepReplacePod         stepKind = "ReplacePod"
	stepFinishSwitchover   stepKind = "FinishSwitchover"
	stepRejectSwitchover   stepKind = "RejectSwitchover"
	stepStartRecovery      stepKind = "StartRecovery"
	stepFinishRecovery     stepKind = "FinishRecovery"
	stepRejectRecovery     stepKind = "RejectRecovery"
)

// activity is what the cluster is busy with; it drives the phase and the Progressing condition.
type activity string

const (
	activityNone          activity = ""
	activityBootstrapping activity = "Bootstrapping"
	activityScalingUp     activity = "ScalingUp"
	activityScalingDown   activity = "ScalingDown"
	activityUpdating      activity = "Updating"
	activitySwitchover    activity = "Switchover"
	activityRecovering    activity = "Recovering"
)

// step is the planner's decision: one action (or a wait) with the reason.
type step struct {
	Kind     stepKind
	Activity activity
	// Member is the pod (and Raft ID) acted on: added, removed, replaced, or the leader handing over.
	Member string
	// Target is the member receiving leadership.
	Target string
	// Replicas is the new StatefulSet size.
	Replicas int32
	// Message says why, for logs, events and conditions.
	Message string
}

// podView is what the operator saw of one pod this pass.
type podView struct {
	Exists      bool
	Ready       bool
	Terminating bool
	// Updated is true when the pod runs the current pod template.
	Updated bool
	// Node is the pod's /raft document, nil when its API did not answer.
	Node *nodeapi.Status
	// Failure says why the pod's node keeps failing (memberFailure); shown in the status, never planned on.
	Failure string
}

// planInput is everything the planner looks at.
type planInput struct {
	// Name is the cluster's (and StatefulSet's) name; pods are Name-<ordinal>.
	Name         string
	Desired      int
	StsExists    bool
	StsReplicas  int
	Bootstrapped bool
	Paused       bool
	// Pods are keyed by pod name; a missing key means no pod and no answer.
	Pods map[string]podView
	// Leader is the pod that reports itself Raft leader ("" when none does).
	Leader string
	// Config and CommitIndex are the leader's Raft configuration and commit index.
	Config      nodeapi.Configuration
	CommitIndex uint64
	// Health is the leader's autopilot view, when it serves one.
	Health *nodeapi.AutopilotHealth
	// TransferTarget is the value of the seqops.io/transfer-leader-to annotation.
	TransferTarget string
	// RecoverFrom is the value of the seqops.io/recover-from annotation.
	RecoverFrom string
	// RecoveryFor names the pod the recovery ConfigMap holds a file for ("" when there is none).
	RecoveryFor string
	// DeleteVolumes is true when storage.retentionPolicy is Delete.
	DeleteVolumes bool
	// Volumes are the ordinals that still have a data PVC.
	Volumes []int
}

func (in planInput) pod(ordinal int) string { return in.Name + "-" + strconv.Itoa(ordinal) }

func (in planInput) member(id string) *nodeapi.Member {
	for i := range in.Config.Servers {
		if in.Config.Servers[i].ID == id {
			return &in.Config.Servers[i]
		}
	}
	return nil
}

// healthy is true when a member's node answers, is caught up and (when the leader says) autopilot-healthy.
func (in planInput) healthy(id string) bool {
	pv, ok := in.Pods[id]
	if !ok || pv.Node == nil || pv.Node.CatchingUp || pv.Node.State == nodeapi.StateShutdown {
		return false
	}
	if in.Health != nil {
		for _, s := range in.Health.Servers {
			if s.ID == id {
				return s.Healthy
			}
		}
	}
	return true
}

// anyConfigured is true when some node already has a Raft configuration: the cluster exists.
func (in planInput) anyConfigured() bool {
	for _, pv := range in.Pods {
		if pv.Node != nil && len(pv.Node.Configuration.Servers) > 0 {
			return true
		}
	}
	return false
}

// planStep picks the one step of this pass. The order matters: recording the bootstrap comes before
// everything (even a pause) because it is what keeps a wiped pod 0 from founding a second cluster; nothing
// changes without a leader; a switchover request is served before scaling; scale-down before scale-up (both
// cannot be wanted at once, but a half-done scale-down must finish first); rollouts only on a full, healthy cluster.
func planStep(in planInput) step {
	if !in.StsExists {
		return step{Message: "waiting for the StatefulSet"}
	}
	if !in.Bootstrapped {
		if in.anyConfigured() {
			return step{Kind: stepMarkBootstrapped, Activity: activityBootstrapping, Member: in.Leader,
				Message: "the Raft cluster exists; recording it so no node bootstraps again"}
		}
		return step{Activity: activityBootstrapping, Message: fmt.Sprintf("waiting for %s to bootstrap the Raft cluster", in.pod(0))}
	}
	// A recovery is an explicit request for the one situation nothing else acts in (no quorum), so it is
	// served even while paused; a leftover recovery file is always cleaned up once a leader exists.
	if in.RecoverFrom != "" || (in.RecoveryFor != "" && in.Leader != "") {
		return planRecovery(in)
	}
	if in.Paused {
		return step{Message: "paused: membership changes, rollouts and switchovers are frozen"}
	}
	if in.Leader == "" {
		return step{Message: "no leader: quorum is lost or an election is running; membership is frozen"}
	}
	for _, plan := range []func(planInput) (step, bool){planSwitchover, planScaleDown, planScaleUp, planRollout} {
		if s, ok := plan(in); ok {
			return s
		}
	}
	return step{}
}

// planRecovery serves the seqops.io/recover-from annotation: rebuild a cluster that lost its quorum from its most
// up-to-date survivor. The node does the work (hashicorp/raft's RecoverCluster from a file naming only itself);
// the operator picks nothing by itself, checks the request, hands the node its file and restarts it.
func planRecovery(in planInput) step {
	t := in.RecoverFrom
	switch {
	case in.Leader != "" && in.RecoveryFor != "":
		return step{Kind: stepFinishRecovery, Activity: activityRecovering, Target: in.RecoveryFor,
			Message: fmt.Sprintf("%s leads again after the recovery", in.Leader)}
	case in.Leader != "":
		return rejectRecovery(t, fmt.Sprintf("%s leads: recovery is only for a cluster that lost its quorum", in.Leader))
	case in.RecoveryFor != "":
		return step{Activity: activityRecovering, Target: in.RecoveryFor,
			Message: fmt.Sprintf("waiting for %s to restart from the recovery file and lead", in.RecoveryFor)}
	}
	ord := parseOrdinal(in.Name, t)
	if ord < 0 || ord >= in.Desired {
		return rejectRecovery(t, fmt.Sprintf("not one of the desired pods %s-0..%d", in.Name, in.Desired-1))
	}
	pv := in.Pods[t]
	if pv.Node == nil {
		return rejectRecovery(t, "its node API does not answer: recover from a survivor that runs")
	}
	if pv.Node.Height == 0 || len(pv.Node.Configuration.Servers) == 0 {
		return rejectRecovery(t, "it has no chain or Raft state to recover from")
	}
	for name, other := range in.Pods {
		if other.Node != nil && name != t && other.Node.LastLogIndex > pv.Node.LastLogIndex {
			return rejectRecovery(t, fmt.Sprintf("%s is more up to date (log index %d, %s has %d): recover from the most up-to-date survivor",
				name, other.Node.LastLogIndex, t, pv.Node.LastLogIndex))
		}
	}
	return step{Kind: stepStartRecovery, Activity: activityRecovering, Target: t,
		Message: fmt.Sprintf("recovering the lost quorum from %s (log index %d): it restarts as the one voter", t, pv.Node.LastLogIndex)}
}

func rejectRecovery(target, why string) step {
	return step{Kind: stepRejectRecovery, Activity: activityRecovering, Target: target,
		Message: fmt.Sprintf("cannot recover from %q: %s", target, why)}
}

// planSwitchover serves the seqops.io/transfer-leader-to annotation.
func planSwitchover(in planInput) (step, bool) {
	t := in.TransferTarget
	if t == "" {
		return step{}, false
	}
	reject := func(why string) (step, bool) {
		return step{Kind: stepRejectSwitchover, Activity: activitySwitchover, Target: t,
			Message: fmt.Sprintf("cannot transfer leadership to %q: %s", t, why)}, true
	}
	if t == in.Leader {
		return step{Kind: stepFinishSwitchover, Activity: activitySwitchover, Target: t,
			Message: fmt.Sprintf("%s leads", t)}, true
	}
	ord := parseOrdinal(in.Name, t)
	switch m := in.member(t); {
	case ord < 0:
		return reject(fmt.Sprintf("not a pod of this cluster (pods are %s-<ordinal>)", in.Name))
	case ord >= in.Desired:
		return reject(fmt.Sprintf("it is not one of the %d desired members", in.Desired))
	case m == nil:
		return reject("it is not a Raft member")
	case m.Suffrage != nodeapi.SuffrageVoter:
		return reject(fmt.Sprintf("it is a %s, not a voter", m.Suffrage))
	}
	pv := in.Pods[t]
	switch {
	case pv.Node == nil:
		return reject("its node API does not answer")
	case pv.Node.CatchingUp:
		return reject(fmt.Sprintf("it is catching up (lag %d)", pv.Node.Lag))
	}
	return step{Kind: stepTransferLeadership, Activity: activitySwitchover, Member: in.Leader, Target: t,
		Message: fmt.Sprintf("switchover requested from %s to %s", in.Leader, t)}, true
}

// bestTarget is the voter leadership should go to: a healthy voter that stays (ordinal < desired), other than
// exclude, optionally only on the current template; least lag first, then lowest ordinal.
func bestTarget(in planInput, exclude string, mustBeUpdated bool) string {
	type cand struct {
		id  string
		lag uint64
		ord int
	}
	var cs []cand
	for _, m := range in.Config.Servers {
		ord := parseOrdinal(in.Name, m.ID)
		if m.ID == exclude || m.Suffrage != nodeapi.SuffrageVoter || ord < 0 || ord >= in.Desired || !in.healthy(m.ID) {
			continue
		}
		pv := in.Pods[m.ID]
		if mustBeUpdated && (!pv.Updated || !pv.Ready || pv.Terminating) {
			continue
		}
		cs = append(cs, cand{m.ID, pv.Node.Lag, ord})
	}
	if len(cs) == 0 {
		return ""
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.lag != b.lag {
			if a.lag < b.lag {
				return -1
			}
			return 1
		}
		return a.ord - b.ord
	})
	return cs[0].id
}

// removalKeepsQuorum is true when removing id leaves a configuration whose healthy voters still form a quorum.
// Removing a voter while another one is down can leave a configuration that can never commit again.
func removalKeepsQuorum(in planInput, id string) bool {
	voters, healthy := 0, 0
	for _, m := range in.Config.Servers {
		if m.ID == id || m.Suffrage != nodeapi.SuffrageVoter {
			continue
		}
		voters++
		if in.healthy(m.ID) {
			healthy++
		}
	}
	return voters > 0 && healthy >= voters/2+1
}

// planScaleDown removes the highest ordinal above the desired size, one step per pass: hand leadership away
// if it leads, remove it from Raft, wait until the removal is committed, shrink the StatefulSet, and, with the
// Delete retention policy, delete its volume.
func planScaleDown(in planInput) (step, bool) {
	k := -1
	if in.StsReplicas > in.Desired {
		k = in.StsReplicas - 1
	}
	for _, m := range in.Config.Servers {
		if ord := parseOrdinal(in.Name, m.ID); ord >= in.Desired && ord > k {
			k = ord
		}
	}
	if k < 0 {
		return planVolumeCleanup(in)
	}
	id := in.pod(k)
	if m := in.member(id); m != nil {
		if id == in.Leader {
			target := bestTarget(in, id, false)
			if target == "" {
				return step{Activity: activityScalingDown, Member: id,
					Message: fmt.Sprintf("%s leads and is being scaled away, but no healthy voter can take over", id)}, true
			}
			return step{Kind: stepTransferLeadership, Activity: activityScalingDown, Member: id, Target: target,
				Message: fmt.Sprintf("%s leads and is being scaled away: handing leadership to %s", id, target)}, true
		}
		if m.Suffrage == nodeapi.SuffrageVoter && !removalKeepsQuorum(in, id) {
			return step{Activity: activityScalingDown, Member: id,
				Message: fmt.Sprintf("removing %s now would leave too few healthy voters for a quorum", id)}, true
		}
		return step{Kind: stepRemoveMember, Activity: activityScalingDown, Member: id,
			Message: fmt.Sprintf("removing %s from the Raft configuration", id)}, true
	}
	if in.Config.Index > in.CommitIndex {
		return step{Activity: activityScalingDown, Member: id,
			Message: fmt.Sprintf("waiting for the removal of %s to commit (configuration %d, commit %d)", id, in.Config.Index, in.CommitIndex)}, true
	}
	return step{Kind: stepScaleStatefulSet, Activity: activityScalingDown, Member: id, Replicas: int32(k),
		Message: fmt.Sprintf("%s left the Raft configuration: shrinking the StatefulSet to %d", id, k)}, true
}

// planVolumeCleanup deletes, under the Delete retention policy, the volume of a pod that was scaled away.
func planVolumeCleanup(in planInput) (step, bool) {
	if !in.DeleteVolumes {
		return step{}, false
	}
	for _, ord := range in.Volumes {
		if ord < in.StsReplicas || ord < in.Desired {
			continue
		}
		if pv, ok := in.Pods[in.pod(ord)]; ok && pv.Exists {
			continue
		}
		return step{Kind: stepDeleteVolume, Activity: activityScalingDown, Member: in.pod(ord),
			Message: fmt.Sprintf("%s was scaled away and storage.retentionPolicy is Delete", in.pod(ord))}, true
	}
	return step{}, false
}

// lostData is true when a voter's node answers but lost its disk: it reports rejoining (it started with no
// Raft state into an existing cluster and refuses to vote until it was a non-voter and caught up), or it has
// no Raft state at all yet. It must not vote again with a forgotten log; it is removed and then added back as
// a non-voter.
func lostData(in planInput, m nodeapi.Member) bool {
	pv, ok := in.Pods[m.ID]
	if !ok || pv.Node == nil || m.Suffrage != nodeapi.SuffrageVoter || m.ID == in.Leader {
		return false
	}
	return pv.Node.Rejoining ||
		(len(pv.Node.Configuration.Servers) == 0 && pv.Node.LastLogIndex == 0 && pv.Node.Term == 0)
}

// planScaleUp grows the StatefulSet to the desired size and adds the missing members one at a time, each as
// a non-voter that autopilot promotes once caught up; the next one is added only after that promotion.
func planScaleUp(in planInput) (step, bool) {
	if in.StsReplicas < in.Desired {
		return step{Kind: stepScaleStatefulSet, Activity: activityScalingUp, Replicas: int32(in.Desired),
			Message: fmt.Sprintf("growing the StatefulSet from %d to %d", in.StsReplicas, in.Desired)}, true
	}
	for _, m := range in.Config.Servers {
		if lostData(in, m) {
			if !removalKeepsQuorum(in, m.ID) {
				return step{Activity: activityScalingUp, Member: m.ID,
					Message: fmt.Sprintf("%s lost its data, but removing it would leave too few healthy voters", m.ID)}, true
			}
			return step{Kind: stepRemoveMember, Activity: activityScalingUp, Member: m.ID,
				Message: fmt.Sprintf("%s lost its Raft state: removing it to add it back as a non-voter", m.ID)}, true
		}
	}
	pending := ""
	for _, m := range in.Config.Servers {
		if m.Suffrage != nodeapi.SuffrageVoter {
			pending = m.ID
			break
		}
	}
	for ord := 0; ord < in.Desired; ord++ {
		id := in.pod(ord)
		if in.member(id) != nil {
			continue
		}
		pv := in.Pods[id]
		switch {
		case pending != "":
			return step{Activity: activityScalingUp, Member: id,
				Message: fmt.Sprintf("waiting for %s to be promoted before adding %s", pending, id)}, true
		case !pv.Exists:
			return step{Activity: activityScalingUp, Member: id, Message: fmt.Sprintf("waiting for pod %s", id)}, true
		case pv.Node == nil:
			return step{Activity: activityScalingUp, Member: id, Message: fmt.Sprintf("waiting for the node API of %s", id)}, true
		}
		return step{Kind: stepAddMember, Activity: activityScalingUp, Member: id,
			Message: fmt.Sprintf("adding %s as a non-voter", id)}, true
	}
	if pending != "" && parseOrdinal(in.Name, pending) >= 0 && parseOrdinal(in.Name, pending) < in.Desired {
		return step{Activity: activityScalingUp, Member: pending,
			Message: fmt.Sprintf("waiting for autopilot to promote %s", pending)}, true
	}
	return step{}, false
}

// planRollout replaces pods that run an old template: followers one at a time, highest ordinal first, each only
// once every member is back, a voter and caught up; then leadership moves to an updated member; then the old
// leader is replaced.
func planRollout(in planInput) (step, bool) {
	var outdated []int
	for ord := 0; ord < in.Desired; ord++ {
		if pv := in.Pods[in.pod(ord)]; pv.Exists && !pv.Updated {
			outdated = append(outdated, ord)
		}
	}
	if len(outdated) == 0 {
		return step{}, false
	}
	for ord := 0; ord < in.Desired; ord++ {
		id := in.pod(ord)
		pv, m := in.Pods[id], in.member(id)
		if !pv.Exists || pv.Terminating || !pv.Ready || m == nil || m.Suffrage != nodeapi.SuffrageVoter || !in.healthy(id) {
			return step{Activity: activityUpdating, Member: id,
				Message: fmt.Sprintf("waiting for %s to be ready, a voter and caught up before replacing the next pod", id)}, true
		}
	}
	for i := len(outdated) - 1; i >= 0; i-- {
		if id := in.pod(outdated[i]); id != in.Leader {
			return step{Kind: stepReplacePod, Activity: activityUpdating, Member: id,
				Message: fmt.Sprintf("replacing follower %s with the new template", id)}, true
		}
	}
	if in.Desired == 1 {
		return step{Kind: stepReplacePod, Activity: activityUpdating, Member: in.Leader,
			Message: fmt.Sprintf("replacing %s, the only member: blocks pause until it is back", in.Leader)}, true
	}
	target := bestTarget(in, in.Leader, true)
	if target == "" {
		return step{Activity: activityUpdating, Member: in.Leader,
			Message: fmt.Sprintf("waiting for an updated, caught-up voter to take leadership from %s", in.Leader)}, true
	}
	return step{Kind: stepTransferLeadership, Activity: activityUpdating, Member: in.Leader, Target: target,
		Message: fmt.Sprintf("handing leadership from %s to updated %s before replacing it", in.Leader, target)}, true
}
