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
	"testing"

	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// cluster builds a planner input for cluster "c": members are the Raft configuration as
// "ordinal:suffrage" (V voter, N non-voter), pods exist, are ready, updated and answer for the given ordinals.
type cluster struct {
	desired, sts int
	members      []string
	pods         []int
	leader       int
}

func (tc cluster) input() planInput {
	in := planInput{
		Name: "c", Desired: tc.desired, StsExists: true, StsReplicas: tc.sts, Bootstrapped: true,
		Pods: map[string]podView{},
	}
	in.Config.Index, in.CommitIndex = 10, 10
	for _, m := range tc.members {
		var ord int
		var s string
		if _, err := fmt.Sscanf(m, "%d:%s", &ord, &s); err != nil {
			panic(err)
		}
		suffrage := nodeapi.SuffrageVoter
		if s == "N" {
			suffrage = nodeapi.SuffrageNonvoter
		}
		in.Config.Servers = append(in.Config.Servers, nodeapi.Member{ID: in.pod(ord), Address: in.pod(ord) + ":7000", Suffrage: suffrage})
	}
	for _, ord := range tc.pods {
		id := in.pod(ord)
		st := &nodeapi.Status{NodeID: id, State: nodeapi.StateFollower, Term: 3, LastLogIndex: 10}
		if in.member(id) != nil {
			st.Configuration = in.Config
		}
		in.Pods[id] = podView{Exists: true, Ready: true, Updated: true, Node: st}
	}
	if tc.leader >= 0 {
		in.Leader = in.pod(tc.leader)
		if pv, ok := in.Pods[in.Leader]; ok {
			pv.Node.State = nodeapi.StateLeader
		}
	}
	return in
}

func TestPlanStep(t *testing.T) {
	healthy3 := cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0}
	cases := []struct {
		name   string
		in     planInput
		mutate func(*planInput)
		want   step
	}{
		{
			name: "no StatefulSet yet", in: planInput{Name: "c", Desired: 3},
			want: step{Message: "waiting for the StatefulSet"},
		},
		{
			name: "bootstrap: waiting for pod 0",
			in:   cluster{desired: 3, sts: 3, pods: []int{0, 1, 2}, leader: -1}.input(),
			mutate: func(in *planInput) {
				in.Bootstrapped = false
			},
			want: step{Activity: activityBootstrapping, Message: "waiting for c-0 to bootstrap the Raft cluster"},
		},
		{
			name: "bootstrap: pod 0 formed the cluster, record it even while paused",
			in:   cluster{desired: 3, sts: 3, members: []string{"0:V"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			mutate: func(in *planInput) {
				in.Bootstrapped, in.Paused = false, true
			},
			want: step{Kind: stepMarkBootstrapped, Activity: activityBootstrapping, Member: "c-0"},
		},
		{
			name: "paused: nothing moves",
			in:   cluster{desired: 5, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			mutate: func(in *planInput) {
				in.Paused, in.TransferTarget = true, "c-1"
			},
			want: step{Message: "paused: membership changes, rollouts and switchovers are frozen"},
		},
		{
			name: "quorum lost: nothing moves",
			in:   cluster{desired: 5, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0}, leader: -1}.input(),
			want: step{Message: "no leader: quorum is lost or an election is running; membership is frozen"},
		},
		{
			name: "scale up: grow the StatefulSet first",
			in:   cluster{desired: 5, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			want: step{Kind: stepScaleStatefulSet, Activity: activityScalingUp, Replicas: 5},
		},
		{
			name: "scale up: add the lowest missing member as a non-voter",
			in:   cluster{desired: 3, sts: 3, members: []string{"0:V"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			want: step{Kind: stepAddMember, Activity: activityScalingUp, Member: "c-1"},
		},
		{
			name: "scale up: one at a time, wait for the promotion",
			in:   cluster{desired: 3, sts: 3, members: []string{"0:V", "1:N"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			want: step{Activity: activityScalingUp, Member: "c-2"},
		},
		{
			name: "scale up: last member added, waiting for autopilot",
			in:   cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:N"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			want: step{Activity: activityScalingUp, Member: "c-2"},
		},
		{
			name: "scale up: pod not created yet",
			in:   cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V"}, pods: []int{0, 1}, leader: 0}.input(),
			want: step{Activity: activityScalingUp, Member: "c-2"},
		},
		{
			name: "scale up: pod exists but its API does not answer",
			in:   cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V"}, pods: []int{0, 1}, leader: 0}.input(),
			mutate: func(in *planInput) {
				in.Pods["c-2"] = podView{Exists: true}
			},
			want: step{Activity: activityScalingUp, Member: "c-2"},
		},
		{
			name: "wiped member: removed so it can come back as a non-voter",
			in:   healthy3.input(),
			mutate: func(in *planInput) {
				in.Pods["c-1"] = podView{Exists: true, Ready: true, Updated: true, Node: &nodeapi.Status{NodeID: "c-1", State: nodeapi.StateFollower}}
			},
			want: step{Kind: stepRemoveMember, Activity: activityScalingUp, Member: "c-1"},
		},
		{
			name: "wiped member that already caught up as a voter but still reports rejoining: removed too",
			in:   healthy3.input(),
			mutate: func(in *planInput) {
				in.Pods["c-1"].Node.Rejoining = true
			},
			want: step{Kind: stepRemoveMember, Activity: activityScalingUp, Member: "c-1"},
		},
		{
			name: "a rejoining non-voter is left to catch up",
			in:   cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:N"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			mutate: func(in *planInput) {
				in.Pods["c-2"].Node.Rejoining = true
			},
			want: step{Activity: activityScalingUp, Member: "c-2"},
		},
		{
			name: "scale down 3→1, step 1: remove the highest ordinal",
			in:   cluster{desired: 1, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			want: step{Kind: stepRemoveMember, Activity: activityScalingDown, Member: "c-2"},
		},
		{
			name: "scale down: the leader is in the way, hand leadership to the best staying voter",
			in:   cluster{desired: 1, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 2}.input(),
			want: step{Kind: stepTransferLeadership, Activity: activityScalingDown, Member: "c-2", Target: "c-0"},
		},
		{
			name: "scale down: leader in the way prefers the least lagging voter",
			in:   cluster{desired: 2, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 2}.input(),
			mutate: func(in *planInput) {
				in.Pods["c-0"].Node.Lag = 7
			},
			want: step{Kind: stepTransferLeadership, Activity: activityScalingDown, Member: "c-2", Target: "c-1"},
		},
		{
			name: "scale down: leader in the way and no healthy voter to take over",
			in:   cluster{desired: 2, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{2}, leader: 2}.input(),
			want: step{Activity: activityScalingDown, Member: "c-2"},
		},
		{
			name: "scale down: removal not committed yet",
			in:   cluster{desired: 1, sts: 3, members: []string{"0:V", "1:V"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			mutate: func(in *planInput) {
				in.Config.Index = 11
			},
			want: step{Activity: activityScalingDown, Member: "c-2"},
		},
		{
			name: "scale down: removal committed, shrink the StatefulSet",
			in:   cluster{desired: 1, sts: 3, members: []string{"0:V", "1:V"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			want: step{Kind: stepScaleStatefulSet, Activity: activityScalingDown, Member: "c-2", Replicas: 2},
		},
		{
			name: "scale down: next member",
			in:   cluster{desired: 1, sts: 2, members: []string{"0:V", "1:V"}, pods: []int{0, 1}, leader: 0}.input(),
			want: step{Kind: stepRemoveMember, Activity: activityScalingDown, Member: "c-1"},
		},
		{
			name: "scale down: a member above a StatefulSet that was shrunk by hand is removed too",
			in:   cluster{desired: 2, sts: 2, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1}, leader: 0}.input(),
			want: step{Kind: stepRemoveMember, Activity: activityScalingDown, Member: "c-2"},
		},
		{
			name: "scale down: a removal that would lose quorum waits",
			// 5 voters, 2 and 3 down: removing 4 leaves 4 voters of which only 2 are healthy.
			in:   cluster{desired: 3, sts: 5, members: []string{"0:V", "1:V", "2:V", "3:V", "4:V"}, pods: []int{0, 1, 4}, leader: 0}.input(),
			want: step{Activity: activityScalingDown, Member: "c-4"},
		},
		{
			name: "scale down done: Delete policy removes the volume of a pod that is gone",
			in:   cluster{desired: 1, sts: 1, members: []string{"0:V"}, pods: []int{0}, leader: 0}.input(),
			mutate: func(in *planInput) {
				in.DeleteVolumes, in.Volumes = true, []int{0, 1, 2}
			},
			want: step{Kind: stepDeleteVolume, Activity: activityScalingDown, Member: "c-1"},
		},
		{
			name: "scale down done: Delete policy waits for the pod to be gone",
			in:   cluster{desired: 1, sts: 1, members: []string{"0:V"}, pods: []int{0, 1}, leader: 0}.input(),
			mutate: func(in *planInput) {
				in.DeleteVolumes, in.Volumes = true, []int{0, 1}
			},
			want: step{},
		},
		{
			name: "scale down done: Retain keeps volumes",
			in:   cluster{desired: 1, sts: 1, members: []string{"0:V"}, pods: []int{0}, leader: 0}.input(),
			mutate: func(in *planInput) {
				in.Volumes = []int{0, 1, 2}
			},
			want: step{},
		},
		{
			name: "healthy: nothing to do",
			in:   healthy3.input(),
			want: step{},
		},
		{
			name: "switchover to a caught-up voter",
			in:   healthy3.input(),
			mutate: func(in *planInput) {
				in.TransferTarget = "c-2"
			},
			want: step{Kind: stepTransferLeadership, Activity: activitySwitchover, Member: "c-0", Target: "c-2"},
		},
		{
			name: "switchover done once the target leads",
			in:   healthy3.input(),
			mutate: func(in *planInput) {
				in.TransferTarget = "c-0"
			},
			want: step{Kind: stepFinishSwitchover, Activity: activitySwitchover, Target: "c-0"},
		},
		{
			name: "switchover to a foreign pod is refused",
			in:   healthy3.input(),
			mutate: func(in *planInput) {
				in.TransferTarget = "other-1"
			},
			want: step{Kind: stepRejectSwitchover, Activity: activitySwitchover, Target: "other-1"},
		},
		{
			name: "switchover to a non-voter is refused",
			in:   cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:N"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			mutate: func(in *planInput) {
				in.TransferTarget = "c-2"
			},
			want: step{Kind: stepRejectSwitchover, Activity: activitySwitchover, Target: "c-2"},
		},
		{
			name: "switchover to a catching-up voter is refused",
			in:   healthy3.input(),
			mutate: func(in *planInput) {
				in.TransferTarget = "c-1"
				in.Pods["c-1"].Node.CatchingUp = true
			},
			want: step{Kind: stepRejectSwitchover, Activity: activitySwitchover, Target: "c-1"},
		},
		{
			name: "switchover to an unreachable voter is refused",
			in:   cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1}, leader: 0}.input(),
			mutate: func(in *planInput) {
				in.TransferTarget = "c-2"
			},
			want: step{Kind: stepRejectSwitchover, Activity: activitySwitchover, Target: "c-2"},
		},
		{
			name: "switchover beyond the desired size is refused",
			in:   healthy3.input(),
			mutate: func(in *planInput) {
				in.TransferTarget = "c-5"
			},
			want: step{Kind: stepRejectSwitchover, Activity: activitySwitchover, Target: "c-5"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			got := planStep(in)
			if tc.want.Message == "" {
				got.Message = ""
			}
			if got != tc.want {
				t.Errorf("planStep() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPlanRollout(t *testing.T) {
	outdated := func(ords ...int) func(*planInput) {
		return func(in *planInput) {
			for _, o := range ords {
				pv := in.Pods[in.pod(o)]
				pv.Updated = false
				in.Pods[in.pod(o)] = pv
			}
		}
	}
	cases := []struct {
		name   string
		in     cluster
		mutate []func(*planInput)
		want   step
	}{
		{"followers first, highest ordinal first", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0},
			[]func(*planInput){outdated(0, 1, 2)}, step{Kind: stepReplacePod, Activity: activityUpdating, Member: "c-2"}},
		{"the leader is skipped while followers are outdated", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 2},
			[]func(*planInput){outdated(0, 2)}, step{Kind: stepReplacePod, Activity: activityUpdating, Member: "c-0"}},
		{"wait until the replaced pod is ready again", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0},
			[]func(*planInput){outdated(0, 1), func(in *planInput) {
				pv := in.Pods["c-2"]
				pv.Ready = false
				in.Pods["c-2"] = pv
			}}, step{Activity: activityUpdating, Member: "c-2"}},
		{"wait until the replaced pod caught up", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0},
			[]func(*planInput){outdated(0, 1), func(in *planInput) { in.Pods["c-2"].Node.CatchingUp = true }}, step{Activity: activityUpdating, Member: "c-2"}},
		{"wait while a pod is terminating", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0},
			[]func(*planInput){outdated(0, 1), func(in *planInput) {
				pv := in.Pods["c-1"]
				pv.Terminating = true
				in.Pods["c-1"] = pv
			}}, step{Activity: activityUpdating, Member: "c-1"}},
		{"only the leader is left: hand leadership to an updated voter", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0},
			[]func(*planInput){outdated(0)}, step{Kind: stepTransferLeadership, Activity: activityUpdating, Member: "c-0", Target: "c-1"}},
		{"then the old leader, now a follower, is replaced", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 1},
			[]func(*planInput){outdated(0)}, step{Kind: stepReplacePod, Activity: activityUpdating, Member: "c-0"}},
		{"a single member is replaced in place", cluster{desired: 1, sts: 1, members: []string{"0:V"}, pods: []int{0}, leader: 0},
			[]func(*planInput){outdated(0)}, step{Kind: stepReplacePod, Activity: activityUpdating, Member: "c-0"}},
		{"no rollout while a member is a non-voter", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:N"}, pods: []int{0, 1, 2}, leader: 0},
			[]func(*planInput){outdated(1)}, step{Activity: activityScalingUp, Member: "c-2"}},
		{"all updated: done", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0},
			nil, step{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in.input()
			for _, m := range tc.mutate {
				m(&in)
			}
			got := planStep(in)
			got.Message = ""
			if got != tc.want {
				t.Errorf("planStep() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestScaleDownConverges walks a scale-down 5→1 with the leader on the highest ordinal, applying each planned
// step to a model of the cluster, and checks that from every intermediate state (as a restarted operator would
// find it) the planner makes progress and ends with one member, one pod and no stray volume.
func TestScaleDownConverges(t *testing.T) {
	in := cluster{desired: 1, sts: 5, members: []string{"0:V", "1:V", "2:V", "3:V", "4:V"}, pods: []int{0, 1, 2, 3, 4}, leader: 4}.input()
	in.DeleteVolumes, in.Volumes = true, []int{0, 1, 2, 3, 4}
	var kinds []stepKind
	for i := 0; i < 50; i++ {
		s := planStep(in)
		if s.Kind == stepWait {
			if s.Activity != activityNone {
				t.Fatalf("stuck at %q", s.Message)
			}
			break
		}
		kinds = append(kinds, s.Kind)
		switch s.Kind {
		case stepTransferLeadership:
			in.Pods[in.Leader].Node.State = nodeapi.StateFollower
			in.Leader = s.Target
			in.Pods[s.Target].Node.State = nodeapi.StateLeader
		case stepRemoveMember:
			for j, m := range in.Config.Servers {
				if m.ID == s.Member {
					in.Config.Servers = append(in.Config.Servers[:j:j], in.Config.Servers[j+1:]...)
				}
			}
			in.Config.Index++
			if i%2 == 0 {
				// Every other removal is seen uncommitted first.
				if w := planStep(in); w.Kind != stepWait || w.Activity != activityScalingDown {
					t.Fatalf("uncommitted removal of %s: planned %+v, want a wait", s.Member, w)
				}
			}
			in.CommitIndex = in.Config.Index
		case stepScaleStatefulSet:
			for o := int(s.Replicas); o < in.StsReplicas; o++ {
				delete(in.Pods, in.pod(o))
			}
			in.StsReplicas = int(s.Replicas)
		case stepDeleteVolume:
			in.Volumes = in.Volumes[:len(in.Volumes)-1]
		default:
			t.Fatalf("unexpected step %+v", s)
		}
	}
	if len(in.Config.Servers) != 1 || in.Config.Servers[0].ID != "c-0" || in.StsReplicas != 1 || len(in.Volumes) != 1 {
		t.Fatalf("ended with members %v, %d replicas, volumes %v (steps %v)", in.Config.Servers, in.StsReplicas, in.Volumes, kinds)
	}
	if kinds[0] != stepTransferLeadership {
		t.Fatalf("first step %s, want the leader to hand over first", kinds[0])
	}
}

func TestPlanRecovery(t *testing.T) {
	// Quorum lost: only c-0 and c-1 of five voters answer; c-1 has the longer log.
	lost := func() planInput {
		in := cluster{desired: 5, sts: 5, members: []string{"0:V", "1:V", "2:V", "3:V", "4:V"}, pods: []int{0, 1}, leader: -1}.input()
		for id, pv := range in.Pods {
			pv.Node.Height = 100
			if id == "c-1" {
				pv.Node.LastLogIndex = 12
			}
		}
		return in
	}
	cases := []struct {
		name   string
		in     planInput
		mutate func(*planInput)
		want   step
	}{
		{"start from the most up-to-date survivor, even while paused", lost(),
			func(in *planInput) { in.RecoverFrom, in.Paused = "c-1", true },
			step{Kind: stepStartRecovery, Activity: activityRecovering, Target: "c-1"}},
		{"refuse a survivor that is behind another", lost(),
			func(in *planInput) { in.RecoverFrom = "c-0" },
			step{Kind: stepRejectRecovery, Activity: activityRecovering, Target: "c-0"}},
		{"refuse a pod that does not answer", lost(),
			func(in *planInput) { in.RecoverFrom = "c-3" },
			step{Kind: stepRejectRecovery, Activity: activityRecovering, Target: "c-3"}},
		{"refuse a pod outside the cluster", lost(),
			func(in *planInput) { in.RecoverFrom = "c-7" },
			step{Kind: stepRejectRecovery, Activity: activityRecovering, Target: "c-7"}},
		{"refuse a node without state", lost(),
			func(in *planInput) { in.RecoverFrom, in.Pods["c-1"].Node.Configuration.Servers = "c-1", nil },
			step{Kind: stepRejectRecovery, Activity: activityRecovering, Target: "c-1"}},
		{"refuse while a leader exists",
			cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			func(in *planInput) { in.RecoverFrom = "c-1" },
			step{Kind: stepRejectRecovery, Activity: activityRecovering, Target: "c-1"}},
		{"wait for the target to restart and lead", lost(),
			func(in *planInput) { in.RecoverFrom, in.RecoveryFor = "c-1", "c-1" },
			step{Activity: activityRecovering, Target: "c-1"}},
		{"finish once it leads",
			cluster{desired: 5, sts: 5, members: []string{"1:V"}, pods: []int{0, 1}, leader: 1}.input(),
			func(in *planInput) { in.RecoverFrom, in.RecoveryFor = "c-1", "c-1" },
			step{Kind: stepFinishRecovery, Activity: activityRecovering, Target: "c-1"}},
		{"clean up a leftover recovery file after a crash between the steps",
			cluster{desired: 5, sts: 5, members: []string{"1:V"}, pods: []int{0, 1}, leader: 1}.input(),
			func(in *planInput) { in.RecoveryFor = "c-1" },
			step{Kind: stepFinishRecovery, Activity: activityRecovering, Target: "c-1"}},
		{"after the recovery, the lost members come back as non-voters",
			cluster{desired: 5, sts: 5, members: []string{"1:V"}, pods: []int{0, 1, 2, 3, 4}, leader: 1}.input(),
			nil,
			step{Kind: stepAddMember, Activity: activityScalingUp, Member: "c-0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			got := planStep(in)
			if got.Message == "" && got.Kind != stepWait {
				t.Errorf("step %s has no message", got.Kind)
			}
			got.Message = ""
			if got != tc.want {
				t.Errorf("planStep() = %+v, want %+v", got, tc.want)
			}
		})
	}
}
