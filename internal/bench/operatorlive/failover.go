package operatorlive

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/internal/bench/stats"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// FailoverTrial is one SIGKILL of the leader pod's node process. Times are milliseconds from the kill.
type FailoverTrial struct {
	Killed    string `json:"killed"`
	NewLeader string `json:"newLeader"`
	// RaftLeaderMs: a surviving pod's /raft/watch reports itself Leader in a later term.
	RaftLeaderMs float64 `json:"raftLeaderMs"`
	// StatusLeaderMs: the SequencerCluster's status.leader names the new leader.
	StatusLeaderMs float64 `json:"statusLeaderMs"`
	// LabelMs: the new leader's pod carries seqops.io/role=leader.
	LabelMs float64 `json:"labelMs"`
	// LabelExclusiveMs: … and no other pod does (what the leader Service needs).
	LabelExclusiveMs float64 `json:"labelExclusiveMs"`
	// RecoveredMs: the killed pod's container restarted and is Ready, and the cluster is Healthy again.
	RecoveredMs float64 `json:"recoveredMs"`
	// Error is set when the trial did not complete; its figures are not counted.
	Error string `json:"error,omitempty"`
}

// FailoverResult is the SIGKILL series and its summaries over the completed trials.
type FailoverResult struct {
	Trials []FailoverTrial `json:"trials"`
	// RaftLeader, StatusLeader, Label and LabelExclusive summarise the fields of the same names.
	RaftLeader     stats.Summary `json:"raftLeader"`
	StatusLeader   stats.Summary `json:"statusLeader"`
	Label          stats.Summary `json:"label"`
	LabelExclusive stats.Summary `json:"labelExclusive"`
	// OperatorLag is StatusLeaderMs − RaftLeaderMs: the operator's share of the status delay.
	OperatorLag stats.Summary `json:"operatorLag"`
	Recovered   stats.Summary `json:"recovered"`
	Failed      int           `json:"failedTrials"`
}

func (r *FailoverResult) finish() {
	var raft, status, label, excl, lag, rec []float64
	r.Failed = 0
	for _, t := range r.Trials {
		if t.Error != "" {
			r.Failed++
			continue
		}
		raft = append(raft, t.RaftLeaderMs)
		status = append(status, t.StatusLeaderMs)
		label = append(label, t.LabelMs)
		excl = append(excl, t.LabelExclusiveMs)
		lag = append(lag, t.StatusLeaderMs-t.RaftLeaderMs)
		rec = append(rec, t.RecoveredMs)
	}
	r.RaftLeader, r.StatusLeader, r.Label = stat(raft), stat(status), stat(label)
	r.LabelExclusive, r.OperatorLag, r.Recovered = stat(excl), stat(lag), stat(rec)
}

func (b *bench) measureFailovers(ctx context.Context, ns, name string, n int) (res FailoverResult, err error) {
	defer res.finish()
	pods := []string{name + "-0", name + "-1", name + "-2"}
	nodes := startNodeLog(ctx, b.lc, func(pod string) string { return b.objs.podIP(ns, pod) }, pods)
	defer nodes.stop()
	for i := range n {
		var t FailoverTrial
		t, err = b.failoverTrial(ctx, ns, name, pods, nodes)
		if err != nil {
			return res, fmt.Errorf("failover trial %d: %w", i+1, err)
		}
		res.Trials = append(res.Trials, t)
		if t.Error != "" {
			b.progress("failover %d/%d: %s: %s", i+1, n, t.Killed, t.Error)
		} else {
			b.progress("failover %d/%d: %s → %s: raft %.0f ms, status.leader %.0f ms, label %.0f ms, recovered %.1f s",
				i+1, n, t.Killed, t.NewLeader, t.RaftLeaderMs, t.StatusLeaderMs, t.LabelMs, t.RecoveredMs/1000)
		}
	}
	return res, nil
}

// settle waits until the cluster is Healthy, its status.leader leads in Raft and alone carries the
// leader label, and that has held for a second; it returns the leader and its term.
func (b *bench) settle(ctx context.Context, ns, name string, pods []string) (string, uint64, error) {
	for attempt := 0; attempt < 10; attempt++ {
		_, v, err := b.objs.waitFor(ctx, b.objs.mark(), 3*time.Minute, "a Healthy "+ns+"/"+name+" with a labelled leader", func(v *view) bool {
			sc := v.cluster(ns, name)
			if !healthyAt(sc, int32(len(pods))) {
				return false
			}
			_, excl := leaderLabel(v.clusterPods(ns, name), sc.Status.Leader)
			return excl
		})
		if err != nil {
			return "", 0, err
		}
		leader := v.cluster(ns, name).Status.Leader
		select {
		case <-ctx.Done():
			return "", 0, ctx.Err()
		case <-time.After(time.Second):
		}
		now := b.objs.now().cluster(ns, name)
		raftLeader, st, err := raftLeader(ctx, b.lc, ns, name, pods)
		if err == nil && now != nil && now.Status.Leader == leader && raftLeader == leader && healthyAt(now, int32(len(pods))) {
			return leader, st.Term, nil
		}
	}
	return "", 0, fmt.Errorf("%s/%s did not keep one leader in Raft, status and label for a second in 10 attempts", ns, name)
}

// failoverTrial kills the leader and times what follows. A returned error means the cluster did not
// recover, which ends the series; a trial that only missed a figure carries it in Error.
func (b *bench) failoverTrial(ctx context.Context, ns, name string, pods []string, nodes *nodeLog) (FailoverTrial, error) {
	leader, term, err := b.settle(ctx, ns, name, pods)
	if err != nil {
		return FailoverTrial{}, err
	}
	t := FailoverTrial{Killed: leader}
	before := restarts(b.objs.now().pods[ns+"/"+leader])
	// The PID is looked up first (an API round trip) so that the clock starts at the kill syscall itself.
	rec, err := b.lc.Pod(ctx, ns, leader)
	if err != nil {
		return t, err
	}
	pid := 0
	for _, p := range rec.Containers {
		pid = p
	}
	if len(rec.Containers) != 1 || pid <= 0 {
		return t, fmt.Errorf("pod %s/%s has %d containers (pid %d), want one running", ns, leader, len(rec.Containers), pid)
	}
	objFrom, nodeFrom := b.objs.mark(), nodes.mark()
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return t, fmt.Errorf("cannot kill pid %d of %s/%s: %w", pid, ns, leader, err)
	}

	// ledAfter reports whether pod became leader in a term after the kill, as the node log has it.
	ledAfter := func(pod string) bool {
		for _, e := range nodes.since(nodeFrom) {
			if e.pod == pod && e.st.State == nodeapi.StateLeader && e.st.Term > term {
				return true
			}
		}
		return false
	}
	elected, err := nodes.waitFor(ctx, nodeFrom, 15*time.Second, "a new Raft leader", func(e nodeEvent) bool {
		return e.pod != leader && e.st.State == nodeapi.StateLeader && e.st.Term > term
	})
	if err != nil {
		t.Error = err.Error()
	} else {
		t.NewLeader, t.RaftLeaderMs = elected.pod, stats.Ms(elected.at.Sub(killed))
		// Whichever pod leads after the kill counts, so a second election on the way is not a stale status.
		at, v, err := b.objs.waitFor(ctx, objFrom, 15*time.Second, "status.leader to name the new leader", func(v *view) bool {
			l := v.cluster(ns, name).Status.Leader
			return l != "" && l != leader && ledAfter(l)
		})
		if err != nil {
			t.Error = err.Error()
		} else {
			t.NewLeader, t.StatusLeaderMs = v.cluster(ns, name).Status.Leader, stats.Ms(at.Sub(killed))
		}
	}
	for _, w := range []struct {
		out       *float64
		exclusive bool
	}{{&t.LabelMs, false}, {&t.LabelExclusiveMs, true}} {
		if t.Error != "" {
			break
		}
		at, _, err := b.objs.waitFor(ctx, objFrom, 15*time.Second, "the leader label on the new leader", func(v *view) bool {
			for pod, p := range v.clusterPods(ns, name) {
				if pod == leader || p.Labels == nil || !ledAfter(pod) {
					continue
				}
				on, excl := leaderLabel(v.clusterPods(ns, name), pod)
				if on && (!w.exclusive || excl) {
					return true
				}
			}
			return false
		})
		if err != nil {
			t.Error = err.Error()
			break
		}
		*w.out = stats.Ms(at.Sub(killed))
	}

	at, _, err := b.objs.waitFor(ctx, objFrom, 3*time.Minute, "the killed pod "+leader+" back and the cluster Healthy", func(v *view) bool {
		p := v.pods[ns+"/"+leader]
		return restarts(p) > before && podReady(p) && healthyAt(v.cluster(ns, name), int32(len(pods)))
	})
	if err != nil {
		return t, err
	}
	t.RecoveredMs = stats.Ms(at.Sub(killed))
	return t, nil
}
