// Package campaign runs a fault campaign end to end: network lab, node processes, load, the seeded
// faults one after another with a recovery wait between them, then the checker over every chain, the
// observed heads and the load log. The result is a Report.
package campaign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/seqops/sequencer-operator/internal/chaos/checker"
	"github.com/seqops/sequencer-operator/internal/chaos/cluster"
	"github.com/seqops/sequencer-operator/internal/chaos/load"
	"github.com/seqops/sequencer-operator/internal/chaos/netlab"
	"github.com/seqops/sequencer-operator/internal/chaos/schedule"
)

// Config configures a campaign.
type Config struct {
	Seed   int64
	Faults int
	Nodes  int
	Bin    string
	// Dir holds the node data dirs, logs, wiped dirs and the load log.
	Dir string
	// ResumeBound is the longest allowed time from a fault that left a quorum to the next block.
	ResumeBound time.Duration
	// Recovery bounds the wait for a healthy cluster after each fault.
	Recovery time.Duration
	// NodeArgs are extra node flags.
	NodeArgs []string
	// Log receives progress lines.
	Log io.Writer
}

// ChainID is the chain the campaign's nodes run.
const ChainID = "chaos"

// DefaultNodeArgs are the campaign's node flags: default Raft timings, 100ms blocks, and snapshots
// small and frequent enough that a wiped member catches up from a snapshot and backfills.
var DefaultNodeArgs = []string{"--block-time", "100ms", "--snapshot-threshold", "256", "--trailing-logs", "128", "--snapshot-interval", "2s", "--log-level", "warn"}

func (cfg *Config) defaults() {
	if cfg.ResumeBound == 0 {
		cfg.ResumeBound = 2 * time.Second
	}
	if cfg.Recovery == 0 {
		cfg.Recovery = 60 * time.Second
	}
	if cfg.NodeArgs == nil {
		cfg.NodeArgs = DefaultNodeArgs
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
}

// Run runs the campaign. An error means the campaign could not run (or was interrupted); a run that
// found violations returns a Report with them and no error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	plan, err := schedule.Plan(cfg.Seed, cfg.Faults, cfg.Nodes)
	if err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
	started := time.Now()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", cfg.Dir, err)
	}
	lab, err := netlab.New(ctx, cfg.Nodes)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := lab.Close(context.WithoutCancel(ctx)); err != nil {
			logf("Cannot clean up the network lab: %v", err)
		}
	}()
	logf("Network lab %s: bridge %s, %s, nodes %v", lab.ID, lab.Bridge, lab.Network, ips(lab))
	c, err := cluster.Start(ctx, cluster.Options{Bin: cfg.Bin, Dir: cfg.Dir, Lab: lab, ChainID: ChainID, Args: cfg.NodeArgs})
	if err != nil {
		return nil, err
	}
	defer c.KillAll()
	logf("Cluster of %d formed", cfg.Nodes)

	mon := startMonitor(ctx, c, 100*time.Millisecond)
	loadLog := filepath.Join(cfg.Dir, "load.jsonl")
	subs := make([]load.Submitter, len(c.Nodes))
	for i, n := range c.Nodes {
		subs[i] = n.Client
	}
	gen, err := load.Start(ctx, loadLog, subs, load.Config{Up: func(i int) bool { return c.Nodes[i].Up() }})
	if err != nil {
		mon.stop()
		return nil, err
	}
	sleepCtx(ctx, 2*time.Second) // warm up under load

	rep := &Report{Seed: cfg.Seed, Nodes: cfg.Nodes, Planned: len(plan), ResumeBound: cfg.ResumeBound, ByKind: map[schedule.Kind]int{}}
	var marks []checker.FaultMark
	var runErr error
	for _, f := range plan {
		if ctx.Err() != nil {
			runErr = ctx.Err()
			break
		}
		logf("Fault %s", f)
		in, err := inject(ctx, c, lab, f)
		fr := FaultResult{Fault: f, Target: in.Target, At: in.At, Healed: in.Healed}
		if err != nil {
			fr.Err = err.Error()
			rep.Violations = append(rep.Violations, checker.Violation{Check: "inject", Detail: fmt.Sprintf("fault #%d (%s): %v", f.Index, f.Kind, err)})
			logf("Fault #%d failed: %v", f.Index, err)
		}
		if !in.At.IsZero() {
			rep.Injected++
			rep.ByKind[f.Kind]++
			marks = append(marks, checker.FaultMark{Index: f.Index, Kind: string(f.Kind), At: in.At, Healed: in.Healed, LeftQuorum: f.Kind.LeavesQuorum()})
		}
		if err := c.WaitRecovered(ctx, cfg.Recovery); err != nil {
			fr.Err = err.Error()
			rep.Faults = append(rep.Faults, fr)
			rep.Violations = append(rep.Violations, checker.Violation{Check: "recovery", Detail: fmt.Sprintf("after fault #%d (%s): %v", f.Index, f.Kind, err)})
			logf("Cluster did not recover after fault #%d: %v; ending the campaign", f.Index, err)
			break
		}
		fr.Recovered = time.Now()
		rep.Faults = append(rep.Faults, fr)
		logf("Recovered %v after the heal (load: %+v)", fr.Recovered.Sub(fr.Healed).Round(time.Millisecond), gen.Counts())
		sleepCtx(ctx, f.Quiet)
	}

	counts, err := gen.Stop()
	if err != nil {
		runErr = errors.Join(runErr, err)
	}
	rep.Load = counts
	// The final check runs on a healed cluster even after an interrupted or failed campaign.
	final := context.WithoutCancel(ctx)
	_ = lab.HealAll(final)
	for _, n := range c.Nodes {
		switch {
		case n.Running() && !n.Up():
			_ = c.Resume(n)
		case !n.Running():
			// A fault that went wrong can leave a node down; the chains are compared on all of them.
			if err := c.Restart(n); err != nil {
				logf("Cannot restart %s for the final check: %v", n.ID, err)
			}
		}
	}
	if err := c.WaitRecovered(final, cfg.Recovery); err != nil {
		rep.Violations = append(rep.Violations, checker.Violation{Check: "recovery", Detail: "at the end: " + err.Error()})
	}
	obs := mon.stop()
	if err := check(final, c, cfg, obs, loadLog, marks, rep); err != nil {
		return rep, errors.Join(runErr, err)
	}
	rep.Duration = time.Since(started)
	logf("Done in %v: %d faults, %d blocks, %d acked transactions, %d violations", rep.Duration.Round(time.Second), rep.Injected, rep.Blocks, rep.Tx.Acked, len(rep.Violations))
	return rep, runErr
}

// check fetches every chain and runs the checker.
func check(ctx context.Context, c *cluster.Cluster, cfg Config, obs []checker.Observation, loadLog string, marks []checker.FaultMark, rep *Report) error {
	leader, err := c.Leader(ctx, 30*time.Second)
	if err != nil {
		return fmt.Errorf("cannot check: %w", err)
	}
	st, err := leader.Client.Status(ctx)
	if err != nil {
		return fmt.Errorf("cannot check: %w", err)
	}
	// Every node must reach the leader's head; then read the same heights everywhere.
	height := st.Height
	if err := waitHeight(ctx, c, height); err != nil {
		rep.Violations = append(rep.Violations, checker.Violation{Check: "recovery", Detail: err.Error()})
	}
	var chains []checker.NodeChain
	for _, n := range c.Nodes {
		nc, err := fetchChain(ctx, n, height)
		if err != nil {
			rep.Violations = append(rep.Violations, checker.Violation{Check: "chain", Detail: err.Error()})
			// Compare what could be read; the missing heights are the one violation above, not
			// one per block.
			nc.Partial = true
		}
		chains = append(chains, nc)
	}
	// Stop the nodes before opening wiped stores: nothing else writes them, but this keeps the
	// machine quiet while the checker reads.
	c.KillAll()
	for _, dir := range c.Archives() {
		nc, err := readArchive(dir, ChainID, c)
		if err != nil {
			rep.Violations = append(rep.Violations, checker.Violation{Check: "chain", Detail: err.Error()})
			continue
		}
		chains = append(chains, nc)
	}
	canonical, vs := checker.CheckChains(chains, ChainID, c.Proposer)
	rep.Violations = append(rep.Violations, vs...)
	rep.Blocks = uint64(len(canonical))
	rep.Violations = append(rep.Violations, checker.CheckObservations(canonical, obs)...)
	rep.Observations = len(obs)
	attempts, err := load.ReadLogFile(loadLog)
	if err != nil {
		return err
	}
	stats, vs := checker.CheckTxs(canonical, attempts)
	rep.Tx = stats
	rep.Violations = append(rep.Violations, vs...)
	resumes, vs := checker.CheckResume(canonical, marks, cfg.ResumeBound)
	rep.Violations = append(rep.Violations, vs...)
	rep.setResumes(resumes)
	return nil
}

func waitHeight(ctx context.Context, c *cluster.Cluster, h uint64) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		low := ^uint64(0)
		var lowID string
		for _, n := range c.Nodes {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := n.Client.Status(rctx)
			cancel()
			var got uint64
			if err == nil && !st.CatchingUp {
				got = st.Height
			}
			if got < low {
				low, lowID = got, n.ID
			}
		}
		if low >= h {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not reach height %d (at %d) with its history complete", lowID, h, low)
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

func ips(l *netlab.Lab) []string {
	out := make([]string, len(l.Nodes))
	for i, n := range l.Nodes {
		out[i] = n.IP.String()
	}
	return out
}
