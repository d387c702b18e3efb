package plugin

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) *metav1.Time {
	t := metav1.NewTime(now.Add(-d))
	return &t
}

// healthyCluster is a three-node cluster led by demo-1, with a fourth pod joining as a non-voter.
func healthyCluster() *seqv1.SequencerCluster {
	return &seqv1.SequencerCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "rollups", Name: "demo"},
		Spec:       seqv1.SequencerClusterSpec{ChainID: "demo", Replicas: ptr.To[int32](3)},
		Status: seqv1.SequencerClusterStatus{
			Phase: seqv1.PhaseHealthy, Leader: "demo-1", Term: 4, Height: 12873, FailureTolerance: 1,
			ReadyReplicas: 3, Ready: "3/3",
			Members: []seqv1.MemberStatus{
				{Name: "demo-0", ID: "demo-0", Address: "demo-0.demo-peers:7000", Suffrage: "Voter", State: "Follower", Height: 12873, Healthy: true, LastSeen: ago(3 * time.Second)},
				{Name: "demo-1", ID: "demo-1", Address: "demo-1.demo-peers:7000", Suffrage: "Voter", State: "Leader", Height: 12873, Healthy: true, LastSeen: ago(time.Second)},
				{Name: "demo-2", ID: "demo-2", Address: "demo-2.demo-peers:7000", Suffrage: "Nonvoter", State: "Follower", Height: 12001, Lag: 872, CatchingUp: true, LastSeen: ago(2 * time.Minute)},
				{Name: "demo-3", State: "Unreachable"},
			},
		},
	}
}

func TestStatusHeader(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*seqv1.SequencerCluster)
		want   string
	}{
		{
			name: "healthy",
			want: "rollups/demo: phase Healthy, leader demo-1, term 4, height 12873, failure tolerance 1, ready 3/3",
		},
		{
			name: "no status yet: unknown phase, no leader, ready computed from the desired replicas",
			mutate: func(c *seqv1.SequencerCluster) {
				c.Status = seqv1.SequencerClusterStatus{}
				c.Spec.Replicas = ptr.To[int32](5)
			},
			want: "rollups/demo: phase Unknown (no status yet), leader <none>, term 0, height 0, failure tolerance 0, ready 0/5",
		},
		{
			name: "no quorum",
			mutate: func(c *seqv1.SequencerCluster) {
				c.Status.Phase, c.Status.Leader, c.Status.FailureTolerance, c.Status.Ready = seqv1.PhaseNoQuorum, "", 0, "1/3"
			},
			want: "rollups/demo: phase NoQuorum, leader <none>, term 4, height 12873, failure tolerance 0, ready 1/3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := healthyCluster()
			if tt.mutate != nil {
				tt.mutate(c)
			}
			if got := StatusHeader(c); got != tt.want {
				t.Errorf("StatusHeader:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestPrintMemberTable(t *testing.T) {
	var b bytes.Buffer
	if err := PrintMemberTable(&b, healthyCluster(), now); err != nil {
		t.Fatal(err)
	}
	want := `NAME     ROLE          SUFFRAGE   HEIGHT   LAG   CATCHING-UP   HEALTHY   LAST-SEEN
demo-0   Follower      Voter      12873    0     false         true      3s
demo-1   Leader        Voter      12873    0     false         true      1s
demo-2   Follower      Nonvoter   12001    872   true          false     2m
demo-3   Unreachable   <none>     0        0     false         false     <none>
`
	if b.String() != want {
		t.Errorf("member table:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	empty := healthyCluster()
	empty.Status.Members = nil
	if err := PrintMemberTable(&b, empty, now); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "No members reported yet.\n" {
		t.Errorf("empty member table = %q", got)
	}
}

func TestPrintRaftMembers(t *testing.T) {
	var b bytes.Buffer
	if err := PrintRaftMembers(&b, healthyCluster()); err != nil {
		t.Fatal(err)
	}
	// demo-3 has no Raft ID: it is a pod, not a member, and is left out.
	want := `ID       ADDRESS                  SUFFRAGE
demo-0   demo-0.demo-peers:7000   Voter
demo-1   demo-1.demo-peers:7000   Voter
demo-2   demo-2.demo-peers:7000   Nonvoter
`
	if b.String() != want {
		t.Errorf("Raft members:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	c := healthyCluster()
	c.Status.Members = []seqv1.MemberStatus{{Name: "demo-0"}}
	if err := PrintRaftMembers(&b, c); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "No Raft members reported yet for rollups/demo.\n"; got != want {
		t.Errorf("no Raft members: got %q, want %q", got, want)
	}
}

func TestRole(t *testing.T) {
	tests := []struct {
		name   string
		member seqv1.MemberStatus
		leader string
		want   string
	}{
		{"the cluster's leader", seqv1.MemberStatus{Name: "a", State: "Follower"}, "a", "Leader"},
		{"follower", seqv1.MemberStatus{Name: "b", State: "Follower"}, "a", "Follower"},
		{"cut-off old leader still reporting Leader", seqv1.MemberStatus{Name: "b", State: "Leader"}, "a", "Leader"},
		{"unreachable", seqv1.MemberStatus{Name: "b", State: "Unreachable"}, "a", "Unreachable"},
		{"nothing reported", seqv1.MemberStatus{Name: "b"}, "", "<none>"},
		{"no leader does not match an unnamed member", seqv1.MemberStatus{State: "Candidate"}, "", "Candidate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Role(tt.member, tt.leader); got != tt.want {
				t.Errorf("Role = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSince(t *testing.T) {
	tests := []struct {
		name string
		t    *metav1.Time
		want string
	}{
		{"unset", nil, "<none>"},
		{"zero", &metav1.Time{}, "<none>"},
		{"seconds", ago(12 * time.Second), "12s"},
		{"minutes", ago(5*time.Minute + 10*time.Second), "5m10s"},
		{"hours", ago(3 * time.Hour), "3h"},
		{"clock skew: in the future", ago(-10 * time.Second), "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Since(tt.t, now); got != tt.want {
				t.Errorf("Since = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConditionNotes(t *testing.T) {
	cond := func(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg}
	}
	nominal := []metav1.Condition{
		cond(seqv1.ConditionAvailable, metav1.ConditionTrue, seqv1.ReasonLeaderElected, "demo-1 leads"),
		cond(seqv1.ConditionProgressing, metav1.ConditionFalse, seqv1.ReasonReconciled, "the cluster matches the spec"),
		cond(seqv1.ConditionDegraded, metav1.ConditionFalse, seqv1.ReasonAllMembersHealthy, "all 3 members are healthy voters"),
		cond(seqv1.ConditionQuorumHealthy, metav1.ConditionTrue, seqv1.ReasonQuorumHealthy, "1 voter can fail"),
	}
	tests := []struct {
		name  string
		conds []metav1.Condition
		want  []string
	}{
		{name: "nominal: nothing to say", conds: nominal},
		{name: "no conditions", conds: nil},
		{
			name: "every kind of trouble",
			conds: []metav1.Condition{
				cond(seqv1.ConditionAvailable, metav1.ConditionFalse, seqv1.ReasonNoLeader, "no leader is reachable"),
				cond(seqv1.ConditionProgressing, metav1.ConditionTrue, seqv1.ReasonScalingUp, "adding demo-3"),
				cond(seqv1.ConditionDegraded, metav1.ConditionTrue, seqv1.ReasonMembersUnhealthy, "demo-2 is catching up"),
				cond(seqv1.ConditionQuorumHealthy, metav1.ConditionFalse, seqv1.ReasonNoFailureTolerance, "no voter can fail"),
			},
			want: []string{
				"Available=False (NoLeader): no leader is reachable",
				"Progressing=True (ScalingUp): adding demo-3",
				"Degraded=True (MembersUnhealthy): demo-2 is catching up",
				"QuorumHealthy=False (NoFailureTolerance): no voter can fail",
			},
		},
		{
			name: "a refused switchover is worth telling though Progressing is False",
			conds: []metav1.Condition{
				cond(seqv1.ConditionProgressing, metav1.ConditionFalse, seqv1.ReasonSwitchoverRejected, `cannot transfer leadership to "demo-2": it is catching up (lag 5)`),
			},
			want: []string{`Progressing=False (SwitchoverRejected): cannot transfer leadership to "demo-2": it is catching up (lag 5)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ConditionNotes(tt.conds)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("ConditionNotes:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestPrintStatus(t *testing.T) {
	c := healthyCluster()
	c.Spec.Paused = true
	c.Status.Conditions = []metav1.Condition{{Type: seqv1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: seqv1.ReasonMembersUnhealthy, Message: "demo-2 is catching up"}}
	var b bytes.Buffer
	if err := PrintStatus(&b, c, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	wantPrefix := []string{
		"rollups/demo: phase Healthy, leader demo-1, term 4, height 12873, failure tolerance 1, ready 3/3",
		"spec.paused is set: membership changes, rollouts and switchovers are frozen",
		"",
	}
	for i, w := range wantPrefix {
		if i >= len(lines) || lines[i] != w {
			t.Fatalf("line %d: got %q, want %q\nfull output:\n%s", i, lines[i], w, b.String())
		}
	}
	if !strings.HasPrefix(lines[3], "NAME ") || len(lines) != 3+5+2 {
		t.Fatalf("want the member table (5 lines) then a blank line and one condition note; got:\n%s", b.String())
	}
	if got, want := lines[len(lines)-1], "Degraded=True (MembersUnhealthy): demo-2 is catching up"; got != want {
		t.Errorf("last line %q, want %q", got, want)
	}
}
