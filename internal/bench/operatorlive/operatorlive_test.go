package operatorlive

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

func cluster(gen, observed int64, phase seqv1.Phase, leader string, ready int32, suffrages ...string) *seqv1.SequencerCluster {
	sc := &seqv1.SequencerCluster{ObjectMeta: metav1.ObjectMeta{Generation: gen}}
	sc.Status = seqv1.SequencerClusterStatus{ObservedGeneration: observed, Phase: phase, Leader: leader, ReadyReplicas: ready}
	for i, s := range suffrages {
		sc.Status.Members = append(sc.Status.Members, seqv1.MemberStatus{Name: "c-" + string(rune('0'+i)), Suffrage: s})
	}
	return sc
}

func TestHealthyAt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sc       *seqv1.SequencerCluster
		replicas int32
		want     bool
	}{
		{"healthy three voters", cluster(2, 2, seqv1.PhaseHealthy, "c-0", 3, "Voter", "Voter", "Voter"), 3, true},
		{"absent", nil, 3, false},
		{"old generation", cluster(3, 2, seqv1.PhaseHealthy, "c-0", 3, "Voter", "Voter", "Voter"), 3, false},
		{"scaling", cluster(2, 2, seqv1.PhaseScaling, "c-0", 3, "Voter", "Voter", "Voter"), 3, false},
		{"no leader", cluster(2, 2, seqv1.PhaseHealthy, "", 3, "Voter", "Voter", "Voter"), 3, false},
		{"a pod not ready", cluster(2, 2, seqv1.PhaseHealthy, "c-0", 2, "Voter", "Voter", "Voter"), 3, false},
		{"a non-voter", cluster(2, 2, seqv1.PhaseHealthy, "c-0", 4, "Voter", "Voter", "Voter", "Nonvoter"), 4, false},
		{"still five members", cluster(2, 2, seqv1.PhaseHealthy, "c-0", 3, "Voter", "Voter", "Voter", "Voter", "Voter"), 3, false},
		{"other size", cluster(2, 2, seqv1.PhaseHealthy, "c-0", 3, "Voter", "Voter", "Voter"), 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := healthyAt(tc.sc, tc.replicas); got != tc.want {
				t.Errorf("healthyAt = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMemberSuffrage(t *testing.T) {
	sc := cluster(1, 1, seqv1.PhaseScaling, "c-0", 3, "Voter", "", "Nonvoter")
	for pod, want := range map[string]string{"c-0": "Voter", "c-1": "", "c-2": "Nonvoter", "c-9": ""} {
		if got := memberSuffrage(sc, pod); got != want {
			t.Errorf("memberSuffrage(%s) = %q, want %q", pod, got, want)
		}
	}
	if got := memberSuffrage(nil, "c-0"); got != "" {
		t.Errorf("memberSuffrage(nil) = %q", got)
	}
}

func labelled(roles ...string) map[string]*corev1.Pod {
	out := map[string]*corev1.Pod{}
	for i, r := range roles {
		name := "c-" + string(rune('0'+i))
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if r != "" {
			p.Labels = map[string]string{seqv1.LabelRole: r}
		}
		out[name] = p
	}
	return out
}

func TestLeaderLabel(t *testing.T) {
	for _, tc := range []struct {
		name          string
		pods          map[string]*corev1.Pod
		leader        string
		on, exclusive bool
	}{
		{"only the leader", labelled("follower", "leader", "follower"), "c-1", true, true},
		{"old leader still labelled", labelled("leader", "leader", "follower"), "c-1", true, false},
		{"not yet labelled", labelled("leader", "follower", ""), "c-1", false, false},
		{"no labels", labelled("", "", ""), "c-0", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on, excl := leaderLabel(tc.pods, tc.leader)
			if on != tc.on || excl != tc.exclusive {
				t.Errorf("leaderLabel = %v, %v, want %v, %v", on, excl, tc.on, tc.exclusive)
			}
		})
	}
}

func TestPodReadyAndRestarts(t *testing.T) {
	p := &corev1.Pod{Status: corev1.PodStatus{
		Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{RestartCount: 2}, {RestartCount: 1}},
	}}
	if !podReady(p) || restarts(p) != 3 {
		t.Errorf("podReady = %v, restarts = %d, want true, 3", podReady(p), restarts(p))
	}
	now := metav1.Now()
	p.DeletionTimestamp = &now
	if podReady(p) {
		t.Error("a terminating pod counts as ready")
	}
	if podReady(nil) || restarts(nil) != 0 {
		t.Error("a missing pod counts as ready or restarted")
	}
	p = &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}}}
	if podReady(p) {
		t.Error("a not-ready pod counts as ready")
	}
}

// TestSmoke runs a tiny configuration against a real local control plane: one failover and a few hundred
// blocks of history. It needs root and the built binaries (make k8s-bins build bin/tools/helm);
// OPERATORLIVE_BIN_DIR replaces bin/ (node, manager, localcluster, tools/helm, k8s/).
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local control plane")
	}
	opts := Options{Failovers: 1, HistoryBlocks: 300, BinDir: os.Getenv("OPERATORLIVE_BIN_DIR"), Progress: testWriter{t}}
	if missing := opts.Missing(); os.Geteuid() != 0 || len(missing) > 0 {
		t.Skipf("needs root and the built binaries (make k8s-bins build bin/tools/helm); missing: %v", missing)
	}
	// The informer cache logs through controller-runtime's global logger, which complains when unset.
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	res, err := Run(ctx, opts)
	out, _ := json.MarshalIndent(res, "", "  ")
	t.Logf("result:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failover.Trials) != 1 || res.Failover.Failed != 0 {
		t.Errorf("failover trials %d (failed %d), want 1 completed", len(res.Failover.Trials), res.Failover.Failed)
	}
	tr := res.Failover.Trials[0]
	if tr.NewLeader == "" || tr.NewLeader == tr.Killed {
		t.Errorf("new leader %q after killing %q", tr.NewLeader, tr.Killed)
	}
	if !(tr.RaftLeaderMs > 0 && tr.StatusLeaderMs >= tr.RaftLeaderMs && tr.LabelExclusiveMs >= tr.LabelMs && tr.RecoveredMs > tr.StatusLeaderMs) {
		t.Errorf("trial times out of order: %+v", tr)
	}
	if res.CreateMs <= 0 || res.ScaleUpMs <= 0 || res.ScaleDownMs <= 0 {
		t.Errorf("create %.0f ms, scale up %.0f ms, scale down %.0f ms: all should be measured", res.CreateMs, res.ScaleUpMs, res.ScaleDownMs)
	}
	h := res.History
	if h.HeightAtAdd < 300 || h.VoterMs <= 0 || h.HealthyMs < h.VoterMs || h.BackfillDoneMs <= 0 {
		t.Errorf("history join not measured: %+v", h)
	}
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
