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
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestComputePhase(t *testing.T) {
	healthy := cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0}
	cases := []struct {
		name   string
		in     planInput
		mutate func(*statusInput)
		want   seqv1.Phase
	}{
		{"no StatefulSet", planInput{Name: "c", Desired: 3}, nil, seqv1.PhasePending},
		{"no pods", cluster{desired: 3, sts: 3, leader: -1}.input(), nil, seqv1.PhasePending},
		{"not bootstrapped", cluster{desired: 3, sts: 3, pods: []int{0}, leader: -1}.input(),
			func(s *statusInput) { s.Plan.Bootstrapped = false }, seqv1.PhaseBootstrapping},
		{"bootstrapped this pass", cluster{desired: 3, sts: 3, members: []string{"0:V"}, pods: []int{0, 1, 2}, leader: 0}.input(),
			func(s *statusInput) {
				s.Plan.Bootstrapped = false
				s.Step = step{Kind: stepMarkBootstrapped, Activity: activityBootstrapping}
			}, seqv1.PhaseBootstrapping},
		{"no leader", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0}, leader: -1}.input(), nil, seqv1.PhaseNoQuorum},
		{"scaling", healthy.input(), func(s *statusInput) { s.Step = step{Activity: activityScalingDown} }, seqv1.PhaseScaling},
		{"updating", healthy.input(), func(s *statusInput) { s.Step = step{Activity: activityUpdating} }, seqv1.PhaseUpdating},
		{"switchover keeps Healthy", healthy.input(), func(s *statusInput) { s.Step = step{Activity: activitySwitchover} }, seqv1.PhaseHealthy},
		{"member down", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1}, leader: 0}.input(), nil, seqv1.PhaseDegraded},
		{"member catching up", healthy.input(), func(s *statusInput) { s.Plan.Pods["c-1"].Node.CatchingUp = true }, seqv1.PhaseDegraded},
		{"member failed", healthy.input(), func(s *statusInput) { s.Plan.Pods["c-2"] = failedPod }, seqv1.PhaseDegraded},
		{"healthy", healthy.input(), nil, seqv1.PhaseHealthy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := statusInput{Plan: tc.in, Now: now}
			if tc.mutate != nil {
				tc.mutate(&s)
			}
			if got := computePhase(s); got != tc.want {
				t.Errorf("computePhase() = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestComputeConditions(t *testing.T) {
	type want struct{ available, progressing, degraded, quorum string }
	reasons := func(conds []metav1.Condition) want {
		get := func(t string) string {
			c := meta.FindStatusCondition(conds, t)
			if c == nil {
				return "missing"
			}
			return string(c.Status) + "/" + c.Reason
		}
		return want{get(seqv1.ConditionAvailable), get(seqv1.ConditionProgressing), get(seqv1.ConditionDegraded), get(seqv1.ConditionQuorumHealthy)}
	}
	rejected := []metav1.Condition{{Type: seqv1.ConditionProgressing, Status: metav1.ConditionFalse, Reason: seqv1.ReasonSwitchoverRejected, Message: "no"}}
	cases := []struct {
		name   string
		in     cluster
		mutate func(*statusInput)
		want   want
	}{
		{"healthy three", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0}, nil,
			want{"True/LeaderElected", "False/Reconciled", "False/AllMembersHealthy", "True/FailureTolerant"}},
		{"one of three down", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1}, leader: 0}, nil,
			want{"True/LeaderElected", "False/Reconciled", "True/MembersUnhealthy", "False/NoFailureTolerance"}},
		{"one of five down", cluster{desired: 5, sts: 5, members: []string{"0:V", "1:V", "2:V", "3:V", "4:V"}, pods: []int{0, 1, 2, 3}, leader: 0}, nil,
			want{"True/LeaderElected", "False/Reconciled", "True/MembersUnhealthy", "True/FailureTolerant"}},
		{"single member by design", cluster{desired: 1, sts: 1, members: []string{"0:V"}, pods: []int{0}, leader: 0}, nil,
			want{"True/LeaderElected", "False/Reconciled", "False/AllMembersHealthy", "True/SingleMember"}},
		{"two members tolerate nothing", cluster{desired: 2, sts: 2, members: []string{"0:V", "1:V"}, pods: []int{0, 1}, leader: 0}, nil,
			want{"True/LeaderElected", "False/Reconciled", "False/AllMembersHealthy", "False/NoFailureTolerance"}},
		{"quorum lost", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0}, leader: -1}, nil,
			want{"False/NoLeader", "False/QuorumLost", "True/QuorumLost", "False/QuorumLost"}},
		{"bootstrapping", cluster{desired: 3, sts: 3, pods: []int{0}, leader: -1}, func(s *statusInput) {
			s.Plan.Bootstrapped = false
			s.Step = step{Activity: activityBootstrapping}
		}, want{"False/Bootstrapping", "True/Bootstrapping", "False/Bootstrapping", "False/Bootstrapping"}},
		{"scaling up", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:N"}, pods: []int{0, 1, 2}, leader: 0}, func(s *statusInput) {
			s.Step = step{Activity: activityScalingUp}
		}, want{"True/LeaderElected", "True/ScalingUp", "True/MembersUnhealthy", "False/NoFailureTolerance"}},
		{"paused", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0}, func(s *statusInput) {
			s.Plan.Paused = true
		}, want{"True/LeaderElected", "False/Paused", "False/AllMembersHealthy", "True/FailureTolerant"}},
		{"switchover rejected now", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0}, func(s *statusInput) {
			s.Rejection = "cannot transfer"
		}, want{"True/LeaderElected", "False/SwitchoverRejected", "False/AllMembersHealthy", "True/FailureTolerant"}},
		{"switchover rejection is remembered while idle", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0}, func(s *statusInput) {
			s.Previous.Conditions = rejected
		}, want{"True/LeaderElected", "False/SwitchoverRejected", "False/AllMembersHealthy", "True/FailureTolerant"}},
		{"switchover rejection is replaced by progress", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0}, func(s *statusInput) {
			s.Previous.Conditions = rejected
			s.Step = step{Activity: activityUpdating}
		}, want{"True/LeaderElected", "True/RollingUpdate", "False/AllMembersHealthy", "True/FailureTolerant"}},
		{"a member failed", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1}, leader: 0}, func(s *statusInput) {
			s.Plan.Pods["c-2"] = failedPod
		}, want{"True/LeaderElected", "False/Reconciled", "True/MemberFailed", "False/NoFailureTolerance"}},
		{"a member failed while bootstrapping", cluster{desired: 3, sts: 3, pods: []int{1, 2}, leader: -1}, func(s *statusInput) {
			s.Plan.Bootstrapped = false
			s.Plan.Pods["c-0"] = failedPod
			s.Step = step{Activity: activityBootstrapping}
		}, want{"False/Bootstrapping", "True/Bootstrapping", "True/MemberFailed", "False/Bootstrapping"}},
		{"quorum lost with a failed member", cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0}, leader: -1}, func(s *statusInput) {
			s.Plan.Pods["c-2"] = failedPod
		}, want{"False/NoLeader", "False/QuorumLost", "True/QuorumLost", "False/QuorumLost"}},
		{"a failed pod beyond the desired count is no desired member", cluster{desired: 3, sts: 4, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 0}, func(s *statusInput) {
			s.Plan.Pods["c-3"] = failedPod
		}, want{"True/LeaderElected", "False/Reconciled", "False/AllMembersHealthy", "True/FailureTolerant"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := statusInput{Plan: tc.in.input(), Now: now, Generation: 4}
			if tc.mutate != nil {
				tc.mutate(&s)
			}
			conds := computeConditions(s)
			if got := reasons(conds); got != tc.want {
				t.Errorf("conditions = %+v, want %+v", got, tc.want)
			}
			for _, c := range conds {
				if c.ObservedGeneration != 4 {
					t.Errorf("%s observedGeneration = %d, want 4", c.Type, c.ObservedGeneration)
				}
			}
		})
	}
}

// failedPod is a pod whose node refuses to start, as observe sees it.
var failedPod = podView{Exists: true, Failure: "exited with code 1: node: raft store /data/raft/raft.db is corrupted"}

// A failed member is named with its reason in the Degraded condition and is Failed in status.members, not
// Unreachable; its Raft membership stays as it is.
func TestFailedMemberStatus(t *testing.T) {
	in := cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1}, leader: 0}.input()
	in.Pods["c-2"] = failedPod
	st := computeStatus(statusInput{Generation: 1, Plan: in, Now: now})
	degraded := meta.FindStatusCondition(st.Conditions, seqv1.ConditionDegraded)
	wantMsg := "c-2 failed: exited with code 1: node: raft store /data/raft/raft.db is corrupted"
	if degraded == nil || degraded.Reason != seqv1.ReasonMemberFailed || degraded.Message != wantMsg {
		t.Errorf("Degraded = %+v, want reason %s and message %q", degraded, seqv1.ReasonMemberFailed, wantMsg)
	}
	states := map[string]string{}
	for _, m := range st.Members {
		states[m.Name] = m.State
	}
	if states["c-2"] != seqv1.MemberStateFailed || states["c-1"] != "Follower" {
		t.Errorf("member states = %v, want c-2 %s", states, seqv1.MemberStateFailed)
	}
	if m := st.Members[2]; m.Suffrage != "Voter" || m.Healthy {
		t.Errorf("failed member = %+v, want a Voter that is not healthy", m)
	}

	// Quorum lost: the reason stays QuorumLost, the message names the failure.
	lost := cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0}, leader: -1}.input()
	lost.Pods["c-2"] = failedPod
	degraded = meta.FindStatusCondition(computeConditions(statusInput{Plan: lost, Now: now}), seqv1.ConditionDegraded)
	if want := "no leader is reachable; " + wantMsg; degraded.Message != want {
		t.Errorf("Degraded message without quorum = %q, want %q", degraded.Message, want)
	}

	// Fixed by the runbook: the new pod answers, the member is no longer Failed.
	in.Pods["c-2"] = podView{Exists: true, Ready: true, Node: in.Pods["c-1"].Node}
	if st := computeStatus(statusInput{Generation: 1, Plan: in, Previous: st, Now: now}); st.Members[2].State == seqv1.MemberStateFailed {
		t.Errorf("member still Failed after it answered: %+v", st.Members[2])
	}
}

func TestComputeStatusIsStable(t *testing.T) {
	in := cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 1, 2}, leader: 1}.input()
	in.Pods["c-1"].Node.Height, in.Pods["c-1"].Node.Term, in.Pods["c-1"].Node.CommitIndex = 120, 4, 300
	first := computeStatus(statusInput{Generation: 2, Plan: in, Now: now})
	if first.Leader != "c-1" || first.Term != 4 || first.Height != 120 || first.CommitIndex != 300 || first.Ready != "3/3" || first.FailureTolerance != 1 {
		t.Fatalf("status = %+v", first)
	}
	if len(first.Members) != 3 || first.Members[0].Name != "c-0" || first.Members[0].LastSeen == nil {
		t.Fatalf("members = %+v", first.Members)
	}
	// The same observation a little later is the same status: no write.
	later := computeStatus(statusInput{Generation: 2, Plan: in, Previous: first, Now: now.Add(10 * time.Second)})
	if !equality.Semantic.DeepEqual(first, later) {
		t.Fatalf("status changed without a change in observation:\n%+v\n%+v", first, later)
	}
	// lastSeen is refreshed after lastSeenRefresh; leaderSince stays with the same leader.
	much := computeStatus(statusInput{Generation: 2, Plan: in, Previous: first, Now: now.Add(lastSeenRefresh)})
	if !much.Members[0].LastSeen.Time.Equal(now.Add(lastSeenRefresh)) || !much.LeaderSince.Time.Equal(now) {
		t.Fatalf("lastSeen %v, leaderSince %v", much.Members[0].LastSeen, much.LeaderSince)
	}
	// A new leader restarts leaderSince; an unreachable member keeps its last lastSeen.
	in2 := cluster{desired: 3, sts: 3, members: []string{"0:V", "1:V", "2:V"}, pods: []int{0, 2}, leader: 2}.input()
	in2.Pods["c-1"] = podView{Exists: true}
	changed := computeStatus(statusInput{Generation: 2, Plan: in2, Previous: first, Now: now.Add(time.Minute)})
	if !changed.LeaderSince.Time.Equal(now.Add(time.Minute)) || changed.Members[1].State != "Unreachable" || !changed.Members[1].LastSeen.Time.Equal(now) {
		t.Fatalf("leaderSince %v, member %+v", changed.LeaderSince, changed.Members[1])
	}
}

func TestPDBMinAvailable(t *testing.T) {
	for replicas, want := range map[int32]int32{1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 7: 4, 9: 5} {
		if got := pdbMinAvailable(replicas); got != want {
			t.Errorf("pdbMinAvailable(%d) = %d, want %d", replicas, got, want)
		}
		// Never more voluntary disruptions than the failures the voters tolerate.
		if tolerated := (replicas - 1) / 2; replicas-pdbMinAvailable(replicas) > tolerated {
			t.Errorf("replicas %d: PDB allows %d disruptions, quorum tolerates %d", replicas, replicas-pdbMinAvailable(replicas), tolerated)
		}
	}
}

func TestTemplateHash(t *testing.T) {
	c := &seqv1.SequencerCluster{ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "ns"},
		Spec: seqv1.SequencerClusterSpec{Replicas: ptr.To[int32](3), ChainID: "x", Image: "node:v1"}}
	h1 := buildPodTemplate(c).Annotations[seqv1.AnnotationTemplateHash]
	if h1 == "" || h1 != buildPodTemplate(c).Annotations[seqv1.AnnotationTemplateHash] {
		t.Fatalf("hash %q is not stable", h1)
	}
	c.Spec.Replicas = ptr.To[int32](5)
	if h := buildPodTemplate(c).Annotations[seqv1.AnnotationTemplateHash]; h != h1 {
		t.Errorf("scaling changed the template hash")
	}
	c.Spec.Image = "node:v2"
	if h := buildPodTemplate(c).Annotations[seqv1.AnnotationTemplateHash]; h == h1 {
		t.Errorf("a new image kept the template hash")
	}
}

func TestOrdinalOf(t *testing.T) {
	c := &seqv1.SequencerCluster{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}
	for name, want := range map[string]int{"demo-0": 0, "demo-12": 12, "demo-": -1, "demo-01": -1, "demo-x": -1, "other-1": -1, "demo-peers-1": -1} {
		if got := ordinalOf(c, name); got != want {
			t.Errorf("ordinalOf(%q) = %d, want %d", name, got, want)
		}
	}
}
