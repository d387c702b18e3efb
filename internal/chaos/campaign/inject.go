package campaign

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/seqops/sequencer-operator/internal/chaos/cluster"
	"github.com/seqops/sequencer-operator/internal/chaos/netlab"
	"github.com/seqops/sequencer-operator/internal/chaos/schedule"
)

// injected is what happened when a fault ran.
type injected struct {
	Target string
	At     time.Time // the fault's first action
	Healed time.Time // the last healing action
}

// inject runs one fault to its heal. It resolves the fault's roles against the current leader.
func inject(ctx context.Context, c *cluster.Cluster, lab *netlab.Lab, f schedule.Fault) (injected, error) {
	leader, err := c.Leader(ctx, 10*time.Second)
	if err != nil {
		return injected{}, fmt.Errorf("before the fault: %w", err)
	}
	followers := c.Followers(leader)
	follower := followers[f.Follower%len(followers)]
	target := follower
	if f.OnLeader || f.Kind == schedule.KillLeader || f.Kind == schedule.PauseLeader || f.Kind == schedule.IsolateLeader {
		target = leader
	}
	var r injected
	r.Target = target.ID
	hold := func() bool { return sleepCtx(ctx, f.Hold) }

	switch f.Kind {
	case schedule.KillLeader, schedule.KillFollower:
		r.At = time.Now()
		if err := c.Kill(target); err != nil {
			return r, err
		}
		hold()
		r.Healed = time.Now()
		return r, c.Restart(target)

	case schedule.PauseLeader:
		r.At = time.Now()
		if err := c.Pause(target); err != nil {
			return r, err
		}
		hold()
		r.Healed = time.Now()
		return r, c.Resume(target)

	case schedule.IsolateLeader:
		r.At = time.Now()
		if err := lab.Cut(ctx, target.Index); err != nil {
			return r, err
		}
		hold()
		r.Healed = time.Now()
		return r, lab.Heal(context.WithoutCancel(ctx), target.Index)

	case schedule.SplitLeaderMinority, schedule.SplitLeaderMajority:
		var a, b []int
		side := map[int]bool{}
		if f.Kind == schedule.SplitLeaderMinority {
			side[leader.Index] = true
			for i := 0; i < f.Minority-1; i++ {
				side[followers[(f.Follower+i)%len(followers)].Index] = true
			}
		} else {
			for i := 0; i < f.Minority; i++ {
				side[followers[(f.Follower+i)%len(followers)].Index] = true
			}
		}
		for _, n := range c.Nodes {
			if side[n.Index] {
				a = append(a, n.Index)
			} else {
				b = append(b, n.Index)
			}
		}
		r.Target = fmt.Sprintf("%v vs %v", names(c, a), names(c, b))
		r.At = time.Now()
		if err := lab.Partition(ctx, a, b); err != nil {
			return r, err
		}
		hold()
		r.Healed = time.Now()
		return r, lab.HealAll(context.WithoutCancel(ctx))

	case schedule.Flap:
		r.At = time.Now()
		end := r.At.Add(f.Hold)
		for i := 0; i < 1000 && time.Now().Before(end) && ctx.Err() == nil; i++ {
			if err := lab.Cut(ctx, target.Index); err != nil {
				return r, err
			}
			sleepCtx(ctx, f.FlapPeriod)
			if err := lab.Heal(context.WithoutCancel(ctx), target.Index); err != nil {
				return r, err
			}
			sleepCtx(ctx, f.FlapPeriod)
		}
		r.Healed = time.Now()
		return r, nil

	case schedule.Restart:
		r.At = time.Now()
		// A stop that hangs is reported, but the node was killed in the end, so the campaign goes on.
		stopErr := c.Term(target)
		if stopErr != nil {
			stopErr = fmt.Errorf("graceful stop: %w", stopErr)
		}
		hold()
		r.Healed = time.Now()
		return r, errors.Join(stopErr, c.Restart(target))

	case schedule.Wipe:
		r.At = time.Now()
		if err := c.Kill(target); err != nil {
			return r, err
		}
		err := c.Wipe(ctx, target)
		r.Healed = time.Now()
		return r, err

	case schedule.QuorumLoss:
		paused := []*cluster.Node{leader}
		for i := 0; len(paused) <= len(c.Nodes)/2; i++ {
			paused = append(paused, followers[(f.Follower+i)%len(followers)])
		}
		ids := make([]int, len(paused))
		for i, n := range paused {
			ids[i] = n.Index
		}
		r.Target = fmt.Sprint(names(c, ids))
		r.At = time.Now()
		for _, n := range paused {
			if err := c.Pause(n); err != nil {
				return r, err
			}
		}
		hold()
		r.Healed = time.Now()
		var firstErr error
		for _, n := range paused {
			if err := c.Resume(n); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		return r, firstErr
	}
	return r, fmt.Errorf("unknown fault kind %q", f.Kind)
}

func names(c *cluster.Cluster, idx []int) []string {
	out := make([]string, len(idx))
	for i, x := range idx {
		out[i] = c.Nodes[x].ID
	}
	return out
}

// sleepCtx sleeps d or until ctx ends; it reports whether the full time passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
