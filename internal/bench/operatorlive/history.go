package operatorlive

import (
	"context"
	"fmt"
	"time"

	"github.com/seqops/sequencer-operator/internal/bench/stats"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// HistoryResult is a member joining a cluster with a long chain. The history is built with a short block
// time through spec.extraArgs (the node's last --block-time wins), which is then removed again (a rolling
// update) so that the join happens at the normal block time. The join times (…Ms) are milliseconds from
// the spec.replicas patch 3 → 4.
type HistoryResult struct {
	// TargetBlocks is the height the build aimed for; HeightAtAdd is the leader's height when replicas
	// was raised: the history the new member actually joined (the build overshoots while the rollout
	// still runs the short block time on the last, leading pod).
	TargetBlocks uint64 `json:"targetBlocks"`
	HeightAtAdd  uint64 `json:"heightAtAdd"`
	// BuildBlockTime is the block time used to build the history; BuildSeconds how long reaching
	// TargetBlocks took from `kubectl apply` of the cluster and BuildBlocksPerSecond the rate achieved.
	BuildBlockTime       string  `json:"buildBlockTime"`
	BuildSeconds         float64 `json:"buildSeconds"`
	BuildBlocksPerSecond float64 `json:"buildBlocksPerSecond"`
	// RolloutSeconds is the removal of the extraArgs → every pod replaced and the cluster Healthy.
	RolloutSeconds float64 `json:"rolloutSeconds"`
	NewMember      string  `json:"newMember"`
	// PodCreatedMs: the new pod exists; PodRunningMs: its container runs; MemberAddedMs: status.members
	// lists it as a Raft member (non-voter); HeadReachedMs: its /raft/watch shows a height of at least
	// HeightAtAdd; VoterMs: status.members shows it a Voter (autopilot promoted it); PodReadyMs: the
	// pod is Ready, which the node's /readyz allows only once history is backfilled; BackfillDoneMs: its
	// /raft/watch shows it caught up with no history missing; HealthyMs: the cluster is Healthy with 4
	// ready voters.
	PodCreatedMs   float64 `json:"podCreatedMs"`
	PodRunningMs   float64 `json:"podRunningMs"`
	MemberAddedMs  float64 `json:"memberAddedMs"`
	HeadReachedMs  float64 `json:"headReachedMs"`
	VoterMs        float64 `json:"voterMs"`
	PodReadyMs     float64 `json:"podReadyMs"`
	BackfillDoneMs float64 `json:"backfillDoneMs"`
	HealthyMs      float64 `json:"healthyMs"`
	// RunningToVoterMs and ReadyToVoterMs are VoterMs − PodRunningMs and VoterMs − PodReadyMs (negative:
	// promoted before the pod was Ready).
	RunningToVoterMs float64 `json:"runningToVoterMs"`
	ReadyToVoterMs   float64 `json:"readyToVoterMs"`
	// InstalledSnapshot: the new member reached the head through a Raft snapshot (its last snapshot
	// index was set when its height first reached HeightAtAdd), not by replaying the log.
	InstalledSnapshot bool `json:"installedSnapshot"`
	// BackfilledAtPromotion: block 1, the last block the top-down backfill stores, was already on the
	// new member when the benchmark saw it promoted.
	BackfilledAtPromotion bool `json:"backfilledAtPromotion"`
	// PromotedAt is the new member's /raft when the benchmark saw it promoted.
	PromotedAt MemberProgress `json:"promotedAt"`
	// BackfillBlocksPerSecond is the history (HeightAtAdd) over the time from head reached to backfill done.
	BackfillBlocksPerSecond float64 `json:"backfillBlocksPerSecond"`
}

// MemberProgress is a member's own view of its progress.
type MemberProgress struct {
	Height            uint64 `json:"height"`
	Lag               uint64 `json:"lag"`
	LastSnapshotIndex uint64 `json:"lastSnapshotIndex"`
	CatchingUp        bool   `json:"catchingUp"`
}

func (b *bench) measureHistory(ctx context.Context, ns, name string) (HistoryResult, error) {
	res := HistoryResult{TargetBlocks: b.o.HistoryBlocks, BuildBlockTime: b.o.HistoryBlockTime.String(), NewMember: name + "-3"}
	pods := []string{name + "-0", name + "-1", name + "-2"}
	b.progress("history: creating a 3-replica cluster with --block-time=%s in extraArgs", b.o.HistoryBlockTime)
	from := b.objs.mark()
	// Snapshots are checked every 2 s instead of 20 s while building, so the log the leader keeps is
	// compacted to the history built and the new member has to install a snapshot, as it would on a
	// long-lived chain.
	applied, err := b.apply(ctx, manifest(ns, name, 3, []string{"--block-time=" + b.o.HistoryBlockTime.String(), "--snapshot-interval=2s"}))
	if err != nil {
		return res, err
	}
	if _, _, err := b.waitHealthy(ctx, from, ns, name, 3, 3*time.Minute); err != nil {
		return res, err
	}

	if err := b.buildHistory(ctx, ns, name, pods, applied, &res); err != nil {
		return res, err
	}

	b.progress("history: removing the extraArgs (rolling update back to %s blocks)", blockTime)
	old := map[string]bool{}
	for _, p := range b.objs.now().clusterPods(ns, name) {
		old[string(p.UID)] = true
	}
	from = b.objs.mark()
	t0, err := b.patch(ctx, ns, name, `{"spec":{"extraArgs":null}}`)
	if err != nil {
		return res, err
	}
	at, _, err := b.objs.waitFor(ctx, from, 5*time.Minute, "the rolling update of "+ns+"/"+name, func(v *view) bool {
		ps := v.clusterPods(ns, name)
		if len(ps) != len(pods) || !healthyAt(v.cluster(ns, name), int32(len(pods))) {
			return false
		}
		for _, p := range ps {
			if old[string(p.UID)] || !podReady(p) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return res, err
	}
	res.RolloutSeconds = at.Sub(t0).Seconds()
	b.progress("history: rolled back to %s blocks in %.1f s", blockTime, res.RolloutSeconds)

	return res, b.join(ctx, ns, name, pods, &res)
}

// buildHistory waits until the leader's chain reaches the target height; the build time counts from
// the cluster's creation (began), since the first pod produces blocks before the others join.
func (b *bench) buildHistory(ctx context.Context, ns, name string, pods []string, began time.Time, res *HistoryResult) error {
	// Bounded by a rate no machine would be slower than (10 blocks/s), on top of ctx.
	deadline := began.Add(2*time.Minute + time.Duration(res.TargetBlocks)*100*time.Millisecond)
	lastReport := began
	for {
		_, st, err := raftLeader(ctx, b.lc, ns, name, pods)
		if err == nil && st.Height >= res.TargetBlocks {
			res.BuildSeconds = time.Since(began).Seconds()
			res.BuildBlocksPerSecond = float64(st.Height) / res.BuildSeconds
			b.progress("history: height %d after %.1f s (%.0f blocks/s)", st.Height, res.BuildSeconds, res.BuildBlocksPerSecond)
			return nil
		}
		if err == nil && time.Since(lastReport) >= 15*time.Second {
			lastReport = time.Now()
			b.progress("history: height %d/%d after %.0f s", st.Height, res.TargetBlocks, time.Since(began).Seconds())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the history did not reach %d blocks by %s (last error: %v)", res.TargetBlocks, time.Since(began).Round(time.Second), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// join raises replicas by one and times the new member from pod to voter to backfilled.
func (b *bench) join(ctx context.Context, ns, name string, pods []string, res *HistoryResult) error {
	_, st, err := raftLeader(ctx, b.lc, ns, name, pods)
	if err != nil {
		return err
	}
	res.HeightAtAdd = st.Height
	member, key := res.NewMember, ns+"/"+res.NewMember
	nodes := startNodeLog(ctx, b.lc, func(pod string) string { return b.objs.podIP(ns, pod) }, []string{member})
	defer nodes.stop()
	b.progress("history: scaling to 4 with %d blocks of history", res.HeightAtAdd)
	from, nodeFrom := b.objs.mark(), nodes.mark()
	t0, err := b.patch(ctx, ns, name, `{"spec":{"replicas":4}}`)
	if err != nil {
		return err
	}
	since := func(at time.Time) float64 { return stats.Ms(at.Sub(t0)) }

	at, _, err := b.objs.waitFor(ctx, from, 3*time.Minute, member+" promoted to voter", func(v *view) bool {
		return memberSuffrage(v.cluster(ns, name), member) == nodeapi.SuffrageVoter
	})
	if err != nil {
		return err
	}
	res.VoterMs = since(at)
	mc := nodeClient(b.lc, nodeURL(ns, name, member), 5*time.Second)
	// Backfill stores history top-down, so block 1 present means none is missing.
	_, blockErr := mc.Block(ctx, 1)
	switch {
	case blockErr == nil:
		res.BackfilledAtPromotion = true
	case !nodeapi.IsNotFound(blockErr):
		return fmt.Errorf("cannot read block 1 from %s: %w", member, blockErr)
	}
	pst, err := mc.Status(ctx)
	if err != nil {
		return fmt.Errorf("cannot read /raft of %s: %w", member, err)
	}
	res.PromotedAt = MemberProgress{Height: pst.Height, Lag: pst.Lag, LastSnapshotIndex: pst.LastSnapshotIndex, CatchingUp: pst.CatchingUp}
	b.progress("history: %s a voter %.0f ms after the patch (history backfilled then: %v)", member, res.VoterMs, res.BackfilledAtPromotion)

	for _, w := range []struct {
		what string
		out  *float64
		cond func(*view) bool
	}{
		{"pod " + member + " created", &res.PodCreatedMs, func(v *view) bool { return v.pods[key] != nil }},
		{"pod " + member + " running", &res.PodRunningMs, func(v *view) bool {
			p := v.pods[key]
			return p != nil && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Running != nil
		}},
		{member + " a Raft member", &res.MemberAddedMs, func(v *view) bool { return memberSuffrage(v.cluster(ns, name), member) != "" }},
	} {
		at, _, err := b.objs.waitFor(ctx, from, time.Minute, w.what, w.cond)
		if err != nil {
			return err
		}
		*w.out = since(at)
	}
	res.RunningToVoterMs = res.VoterMs - res.PodRunningMs

	head, err := nodes.waitFor(ctx, nodeFrom, time.Minute, member+" at the head", func(e nodeEvent) bool { return e.st.Height >= res.HeightAtAdd })
	if err != nil {
		return err
	}
	res.HeadReachedMs, res.InstalledSnapshot = since(head.at), head.st.LastSnapshotIndex > 0

	// Backfill is one block per request from the leader: allow it a generous rate before giving up.
	backfillWait := 2*time.Minute + time.Duration(res.HeightAtAdd)*5*time.Millisecond
	b.progress("history: waiting for %s to backfill %d blocks (up to %s)", member, res.HeightAtAdd, backfillWait.Round(time.Second))
	done, err := nodes.waitFor(ctx, nodeFrom, backfillWait, member+" to finish backfilling", func(e nodeEvent) bool {
		return e.st.Height >= res.HeightAtAdd && !e.st.CatchingUp
	})
	if err != nil {
		return err
	}
	res.BackfillDoneMs = since(done.at)
	if d := done.at.Sub(head.at).Seconds(); d > 0 {
		res.BackfillBlocksPerSecond = float64(res.HeightAtAdd) / d
	}
	at, _, err = b.objs.waitFor(ctx, from, 2*time.Minute, "pod "+member+" Ready", func(v *view) bool { return podReady(v.pods[key]) })
	if err != nil {
		return err
	}
	res.PodReadyMs = since(at)
	res.ReadyToVoterMs = res.VoterMs - res.PodReadyMs
	at, _, err = b.waitHealthy(ctx, from, ns, name, 4, 2*time.Minute)
	if err != nil {
		return err
	}
	res.HealthyMs = since(at)
	b.progress("history: backfilled %.1f s, pod Ready %.1f s, Healthy with 4 voters %.1f s after the patch",
		res.BackfillDoneMs/1000, res.PodReadyMs/1000, res.HealthyMs/1000)
	return nil
}
