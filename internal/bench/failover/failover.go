package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/seqops/sequencer-operator/internal/bench/stats"
	"github.com/seqops/sequencer-operator/internal/nodeproc"
)

// Options configure a run against node processes.
type Options struct {
	// Bin is the node binary.
	Bin       string
	Dir       string
	Timings   stats.Timings
	BlockTime time.Duration
	// Trials is the number of kills (failover) or of each kind of hand-over (switchover).
	Trials int
	// LoadPerSecond is the steady transaction rate during the run.
	LoadPerSecond int
	// Quiet is the pause between catch-up and the next trial; elections in it are spurious.
	Quiet    time.Duration
	Progress io.Writer
}

func (o Options) args() []string {
	t := o.Timings
	return []string{"--block-time", o.BlockTime.String(), "--log-level", "warn",
		"--heartbeat-timeout", t.Heartbeat.String(), "--election-timeout", t.Election.String(),
		"--leader-lease-timeout", t.LeaderLease.String(), "--commit-timeout", t.Commit.String(),
		"--autopilot-stabilization-time", "500ms"}
}

// bench is a running cluster with its watch streams and load.
type bench struct {
	opts   Options
	c      *nodeproc.Cluster
	w      *watcher
	load   *load
	cancel context.CancelFunc
}

func start(ctx context.Context, o Options) (*bench, error) {
	c, err := nodeproc.Start(ctx, nodeproc.Options{Bin: o.Bin, Dir: o.Dir, Args: o.args()})
	if err != nil {
		return nil, fmt.Errorf("cannot start node cluster: %w", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	b := &bench{opts: o, c: c, w: newWatcher(wctx, c), cancel: cancel}
	b.load = startLoad(ctx, c, o.LoadPerSecond)
	return b, nil
}

func (b *bench) stop() {
	b.load.stop()
	b.cancel()
	b.c.StopAll()
}

func (b *bench) index(p *nodeproc.Proc) int {
	for i, q := range b.c.Nodes {
		if q == p {
			return i
		}
	}
	return -1
}

// settle waits for a producing leader and every node at its height, then for the quiet period, and
// reports the leader and the elections that happened in the quiet period.
func (b *bench) settle(ctx context.Context) (leader *nodeproc.Proc, quiet time.Duration, spurious int, err error) {
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	leader, err = b.c.Leader(sctx)
	if err != nil {
		return nil, 0, 0, err
	}
	st, err := leader.Client.Status(sctx)
	if err != nil {
		return nil, 0, 0, err
	}
	if err := b.c.WaitHeight(sctx, st.Height); err != nil {
		return nil, 0, 0, err
	}
	termBefore := b.maxTerm(sctx)
	qStart := time.Now()
	select {
	case <-ctx.Done():
		return nil, 0, 0, ctx.Err()
	case <-time.After(b.opts.Quiet):
	}
	quiet = time.Since(qStart)
	if termAfter := b.maxTerm(sctx); termAfter > termBefore {
		spurious = int(termAfter - termBefore)
	}
	leader, err = b.c.Leader(sctx)
	return leader, quiet, spurious, err
}

func (b *bench) maxTerm(ctx context.Context) uint64 {
	var m uint64
	for _, p := range b.c.Nodes {
		if st, err := p.Client.Status(ctx); err == nil {
			m = max(m, st.Term)
		}
	}
	return m
}

// restart starts a stopped node again and waits until it is a voter at the leader's height.
func (b *bench) restart(ctx context.Context, p *nodeproc.Proc) error {
	if err := b.c.Restart(p); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := b.c.WaitVoters(rctx, len(b.c.Nodes)); err != nil {
		return err
	}
	leader, err := b.c.Leader(rctx)
	if err != nil {
		return err
	}
	st, err := leader.Client.Status(rctx)
	if err != nil {
		return err
	}
	return b.c.WaitHeight(rctx, st.Height)
}

// RunKills kills the leader opts.Trials times under load and measures each failover.
func RunKills(ctx context.Context, o Options) (stats.KillResult, error) {
	res := stats.KillResult{System: "node", Timings: o.Timings, Load: fmt.Sprintf("%d tx/s of 100 bytes, round-robin over the nodes", o.LoadPerSecond)}
	b, err := start(ctx, o)
	if err != nil {
		return res, err
	}
	defer b.stop()
	for k := 0; k < o.Trials && ctx.Err() == nil; k++ {
		tr, quiet, spurious, err := b.kill(ctx)
		res.QuietSeconds += quiet.Seconds()
		res.Spurious += spurious
		if err != nil {
			tr.Error = err.Error()
		}
		res.Trials = append(res.Trials, tr)
		if o.Progress != nil {
			if err != nil {
				fmt.Fprintf(o.Progress, "  node %s kill %d/%d: FAILED: %v\n", o.Timings.Name, k+1, o.Trials, err)
			} else {
				fmt.Fprintf(o.Progress, "  node %s kill %d/%d: leader %.0f ms, producing %.0f ms, first block committed %.0f ms\n",
					o.Timings.Name, k+1, o.Trials, tr.LeaderMs, tr.ProducingMs, tr.FirstCommitMs)
			}
		}
	}
	res.Finish()
	return res, ctx.Err()
}

func (b *bench) kill(ctx context.Context) (tr stats.KillTrial, quiet time.Duration, spurious int, err error) {
	leader, quiet, spurious, err := b.settle(ctx)
	if err != nil {
		return tr, quiet, spurious, fmt.Errorf("cluster did not settle: %w", err)
	}
	li := b.index(leader)
	tr.Killed = leader.ID
	termBefore := b.maxTerm(ctx)
	from := b.w.mark()
	var heightBefore uint64
	for _, e := range b.w.since(0) {
		heightBefore = max(heightBefore, e.height)
	}
	t0 := time.Now()
	b.c.Kill(leader)
	defer func() {
		if rerr := b.restart(ctx, leader); rerr != nil && err == nil {
			err = fmt.Errorf("killed node did not come back: %w", rerr)
		}
	}()
	won, err := b.w.waitFor(ctx, from, 30*time.Second, func(e event) bool { return e.node != li && e.state == "Leader" })
	if err != nil {
		return tr, quiet, spurious, fmt.Errorf("no new leader: %w", err)
	}
	nl := b.c.Nodes[won.node]
	tr.NewLeader, tr.LeaderMs = nl.ID, stats.Ms(won.at.Sub(t0))
	prod, err := b.w.waitFor(ctx, from, 30*time.Second, func(e event) bool { return e.node == won.node && e.producing })
	if err != nil {
		return tr, quiet, spurious, fmt.Errorf("new leader never produced: %w", err)
	}
	tr.ProducingMs = stats.Ms(prod.at.Sub(t0))
	// Let a few blocks pass, then find the first block built after the kill: only the new leader
	// can have built it. Its commit is the first status of the new leader at or above its height.
	if _, err := b.w.waitFor(ctx, from, 30*time.Second, func(e event) bool { return e.node == won.node && e.height >= heightBefore+4 }); err != nil {
		return tr, quiet, spurious, fmt.Errorf("chain did not move on: %w", err)
	}
	first, err := firstBlockAfter(ctx, nl, heightBefore, t0)
	if err != nil {
		return tr, quiet, spurious, err
	}
	commit, err := b.w.waitFor(ctx, from, time.Second, func(e event) bool { return e.node == won.node && e.height >= first })
	if err != nil {
		return tr, quiet, spurious, errors.New("commit of the first new block not seen")
	}
	tr.FirstCommitMs = stats.Ms(commit.at.Sub(t0))
	if after := b.maxTerm(ctx); after > termBefore {
		tr.Elections = int(after - termBefore)
	}
	return tr, quiet, spurious, nil
}

// firstBlockAfter is the lowest height above from-3 whose block was built after t.
func firstBlockAfter(ctx context.Context, p *nodeproc.Proc, from uint64, t time.Time) (uint64, error) {
	start := uint64(1)
	if from > 3 {
		start = from - 3
	}
	for h := start; h <= from+20; h++ {
		blk, err := p.Client.Block(ctx, h)
		if err != nil {
			return 0, fmt.Errorf("cannot read block %d: %w", h, err)
		}
		if blk.Time.After(t) {
			return h, nil
		}
	}
	return 0, fmt.Errorf("no block built after the kill among heights %d..%d", start, from+20)
}
