package failover

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/seqops/sequencer-operator/internal/bench/stats"
)

// RunSwitchovers hands leadership over opts.Trials times by SIGTERM of the leader and opts.Trials
// times through the transfer API, alternating, under load.
func RunSwitchovers(ctx context.Context, o Options) (stats.SwitchResult, error) {
	res := stats.SwitchResult{Timings: o.Timings, BlockTime: o.BlockTime, Load: fmt.Sprintf("%d tx/s of 100 bytes", o.LoadPerSecond)}
	b, err := start(ctx, o)
	if err != nil {
		return res, err
	}
	defer b.stop()
	for k := 0; k < 2*o.Trials && ctx.Err() == nil; k++ {
		kind := "sigterm"
		if k%2 == 1 {
			kind = "transfer"
		}
		tr, err := b.switchover(ctx, kind)
		if err != nil {
			tr.Error = err.Error()
		}
		res.Trials = append(res.Trials, tr)
		if o.Progress != nil {
			if err != nil {
				fmt.Fprintf(o.Progress, "  switchover %d/%d (%s): FAILED: %v\n", k+1, 2*o.Trials, kind, err)
			} else {
				fmt.Fprintf(o.Progress, "  switchover %d/%d (%s): hand-over %.1f ms, largest block gap %.0f ms (commit gap %.0f ms), exit %d\n",
					k+1, 2*o.Trials, kind, tr.HandOverMs, tr.GapMs, tr.CommitGapMs, tr.ExitCode)
			}
		}
	}
	res.Finish()
	return res, ctx.Err()
}

func (b *bench) switchover(ctx context.Context, kind string) (tr stats.SwitchTrial, err error) {
	tr.Kind = kind
	leader, _, _, err := b.settle(ctx)
	if err != nil {
		return tr, fmt.Errorf("cluster did not settle: %w", err)
	}
	li := b.index(leader)
	tr.From = leader.ID
	st, err := leader.Client.Status(ctx)
	if err != nil {
		return tr, err
	}
	tr.Height = st.Height
	// A node that stays up and is not the old leader watches the commits.
	obs := (li + 1) % len(b.c.Nodes)
	from := b.w.mark()
	t0 := time.Now()
	switch kind {
	case "sigterm":
		serr := b.c.Stop(leader)
		tr.HandOverMs = stats.Ms(time.Since(t0))
		var exitErr *exec.ExitError
		switch {
		case serr == nil:
		case errors.As(serr, &exitErr):
			tr.ExitCode = exitErr.ExitCode()
		default:
			tr.ExitCode = -1
		}
		defer func() {
			if rerr := b.restart(ctx, leader); rerr != nil && err == nil {
				err = fmt.Errorf("stopped node did not come back: %w", rerr)
			}
		}()
	case "transfer":
		resp, terr := leader.Client.TransferLeadership(ctx, "")
		tr.HandOverMs = stats.Ms(time.Since(t0))
		if terr != nil {
			return tr, fmt.Errorf("transfer: %w", terr)
		}
		tr.To = resp.LeaderID
	}
	// Wait for ten more blocks on the observer.
	if _, err := b.w.waitFor(ctx, from, 30*time.Second, func(e event) bool { return e.node == obs && e.height >= tr.Height+10 }); err != nil {
		return tr, fmt.Errorf("chain did not move on: %w", err)
	}
	p := b.c.Nodes[obs]
	lo := uint64(1)
	if tr.Height > 5 {
		lo = tr.Height - 5
	}
	var prev time.Time
	for h := lo; h <= tr.Height+10; h++ {
		blk, err := p.Client.Block(ctx, h)
		if err != nil {
			return tr, fmt.Errorf("cannot read block %d: %w", h, err)
		}
		if !prev.IsZero() {
			tr.GapMs = max(tr.GapMs, stats.Ms(blk.Time.Sub(prev)))
		}
		prev = blk.Time
	}
	// Commit gap: arrival of each height at the observer, for heights above the hand-over height.
	seen := map[uint64]time.Time{}
	for _, e := range b.w.since(0) {
		if e.node != obs {
			continue
		}
		if _, ok := seen[e.height]; !ok {
			seen[e.height] = e.at
		}
	}
	var last time.Time
	for h := tr.Height; h <= tr.Height+10; h++ {
		at, ok := seen[h]
		if !ok {
			continue // coalesced with the next status; the gap spans it
		}
		if !last.IsZero() {
			tr.CommitGapMs = max(tr.CommitGapMs, stats.Ms(at.Sub(last)))
		}
		last = at
	}
	if tr.To == "" {
		if nl, err := b.c.Leader(ctx); err == nil {
			tr.To = nl.ID
		}
	}
	return tr, nil
}
