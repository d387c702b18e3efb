package floor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/internal/bench/loopback"
	"github.com/seqops/sequencer-operator/internal/bench/stats"
)

// Options configure a floor run.
type Options struct {
	// Bin is the seqbench binary (it runs the hidden raft-floor-node command).
	Bin     string
	Dir     string
	Timings stats.Timings
	// BlockTime is the proposal interval (100 ms).
	BlockTime time.Duration
	Kills     int
	// Quiet is the pause between catch-up and the next kill, in which elections are spurious.
	Quiet    time.Duration
	Progress io.Writer
}

type event struct {
	at       time.Time // when the benchmark read the line
	node     int
	kind     byte
	lead     bool
	index    uint64
	term     uint64
	proposal time.Time
}

type proc struct {
	id, bind, dir string
	cmd           *exec.Cmd
	exited        chan struct{}
}

type cluster struct {
	opts  Options
	procs []*proc
	peers string
	mu    sync.Mutex
	log   []event
	// notify is closed and replaced on every event.
	notify chan struct{}
}

// Run starts three floor processes and kills the leader opts.Kills times.
func Run(ctx context.Context, o Options) (stats.KillResult, error) {
	res := stats.KillResult{System: "floor", Timings: o.Timings, Load: "one entry per block time"}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return res, err
	}
	nw, err := loopback.Pick(3, 1)
	if err != nil {
		return res, err
	}
	c := &cluster{opts: o, notify: make(chan struct{})}
	var peers []string
	for i := 0; i < 3; i++ {
		p := &proc{id: fmt.Sprintf("f%d", i), bind: nw.Addr(i, 0), dir: filepath.Join(o.Dir, fmt.Sprintf("f%d", i))}
		c.procs = append(c.procs, p)
		peers = append(peers, p.id+"="+p.bind)
	}
	c.peers = strings.Join(peers, ",")
	for i := range c.procs {
		if err := c.start(i); err != nil {
			c.killAll()
			return res, err
		}
	}
	defer c.killAll()
	for k := 0; k < o.Kills; k++ {
		tr, quiet, spurious, err := c.trial(ctx)
		res.QuietSeconds += quiet.Seconds()
		res.Spurious += spurious
		if err != nil {
			tr.Error = err.Error()
		}
		res.Trials = append(res.Trials, tr)
		if o.Progress != nil {
			if err != nil {
				fmt.Fprintf(o.Progress, "  floor %s kill %d/%d: FAILED: %v\n", o.Timings.Name, k+1, o.Kills, err)
			} else {
				fmt.Fprintf(o.Progress, "  floor %s kill %d/%d: leader %.0f ms, first commit %.0f ms\n", o.Timings.Name, k+1, o.Kills, tr.LeaderMs, tr.FirstCommitMs)
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	res.Finish()
	return res, ctx.Err()
}

func (c *cluster) start(i int) error {
	p := c.procs[i]
	t := c.opts.Timings
	cmd := exec.Command(c.opts.Bin, "raft-floor-node", "--id", p.id, "--bind", p.bind, "--dir", p.dir, "--peers", c.peers,
		"--heartbeat", t.Heartbeat.String(), "--election", t.Election.String(), "--lease", t.LeaderLease.String(),
		"--commit", t.Commit.String(), "--block-time", c.opts.BlockTime.String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(c.opts.Dir, p.id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("cannot start floor node %s: %w", p.id, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	exited := p.exited
	// A new process has not led yet, whatever its previous life printed last.
	c.mu.Lock()
	c.log = append(c.log, event{at: time.Now(), node: i, kind: 'S'})
	c.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.record(i, sc.Text())
		}
		_ = cmd.Wait()
		_ = logf.Close()
		close(exited)
	}()
	return nil
}

func (c *cluster) record(node int, line string) {
	at := time.Now()
	f := strings.Fields(line)
	ev := event{at: at, node: node}
	num := func(i int) uint64 {
		if i >= len(f) {
			return 0
		}
		v, _ := strconv.ParseUint(f[i], 10, 64)
		return v
	}
	switch {
	case len(f) == 4 && f[0] == "L":
		ev.kind, ev.lead, ev.term = 'L', f[1] == "1", num(2)
	case len(f) == 5 && f[0] == "A":
		ev.kind, ev.index, ev.term, ev.proposal = 'A', num(1), num(2), time.Unix(0, int64(num(3)))
	default:
		return
	}
	c.mu.Lock()
	c.log = append(c.log, ev)
	close(c.notify)
	c.notify = make(chan struct{})
	c.mu.Unlock()
}

func (c *cluster) running(i int) bool {
	p := c.procs[i]
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (c *cluster) kill(i int) {
	p := c.procs[i]
	if !c.running(i) {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}

func (c *cluster) killAll() {
	for i := range c.procs {
		c.kill(i)
	}
}

// waitFor scans the event log from position from until match returns true, bounded by timeout.
func (c *cluster) waitFor(ctx context.Context, from int, timeout time.Duration, match func(event) bool) (event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		log, notify := c.log, c.notify
		c.mu.Unlock()
		for ; from < len(log); from++ {
			if match(log[from]) {
				return log[from], nil
			}
		}
		select {
		case <-ctx.Done():
			return event{}, ctx.Err()
		case <-deadline.C:
			return event{}, errors.New("timed out")
		case <-notify:
		}
	}
}

func (c *cluster) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.log)
}

// state is, per node, whether its latest L line said it leads, and the highest index and term seen.
func (c *cluster) state() (leader int, lastIndex []uint64, maxTerm uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	leader = -1
	lead := make([]bool, len(c.procs))
	lastIndex = make([]uint64, len(c.procs))
	for _, e := range c.log {
		switch e.kind {
		case 'L':
			lead[e.node] = e.lead
		case 'S':
			lead[e.node] = false
		}
		if e.kind == 'A' && e.index > lastIndex[e.node] {
			lastIndex[e.node] = e.index
		}
		maxTerm = max(maxTerm, e.term)
	}
	for i, l := range lead {
		if l && c.running(i) {
			leader = i
		}
	}
	return leader, lastIndex, maxTerm
}

// trial waits for a settled cluster, lets it run quietly, kills the leader, measures, restarts it and
// waits for it to catch up.
func (c *cluster) trial(ctx context.Context) (tr stats.KillTrial, quiet time.Duration, spurious int, err error) {
	// Settled: a leader, and every node has applied what the leader has.
	settle := time.Now().Add(30 * time.Second)
	for {
		leader, idx, _ := c.state()
		if leader >= 0 && idx[leader] > 0 && idx[0] >= idx[leader]-1 && idx[1] >= idx[leader]-1 && idx[2] >= idx[leader]-1 {
			break
		}
		if time.Now().After(settle) || ctx.Err() != nil {
			return tr, 0, 0, errors.New("cluster did not settle within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, _, termBefore := c.state()
	qStart := time.Now()
	select {
	case <-ctx.Done():
		return tr, 0, 0, ctx.Err()
	case <-time.After(c.opts.Quiet):
	}
	quiet = time.Since(qStart)
	leader, _, termAfter := c.state()
	spurious = int(termAfter - termBefore)
	// Leadership may be moving (a spurious election): wait for it to settle.
	for wait := time.Now().Add(10 * time.Second); leader < 0 && time.Now().Before(wait) && ctx.Err() == nil; {
		time.Sleep(20 * time.Millisecond)
		leader, _, _ = c.state()
	}
	if leader < 0 {
		return tr, quiet, spurious, errors.New("no leader after the quiet period")
	}
	tr.Killed = c.procs[leader].id
	from := c.mark()
	t0 := time.Now()
	c.kill(leader)
	defer func() {
		if rerr := c.start(leader); rerr != nil && err == nil {
			err = rerr
		}
		// Catch-up: the restarted node applies the leader's latest index.
		_, idx, _ := c.state()
		target := slicesMax(idx)
		if _, werr := c.waitFor(ctx, from, 30*time.Second, func(e event) bool { return e.node == leader && e.kind == 'A' && e.index >= target }); werr != nil && err == nil {
			err = fmt.Errorf("restarted node did not catch up: %w", werr)
		}
	}()
	won, err := c.waitFor(ctx, from, 30*time.Second, func(e event) bool { return e.kind == 'L' && e.lead && e.node != leader })
	if err != nil {
		return tr, quiet, spurious, fmt.Errorf("no new leader: %w", err)
	}
	tr.NewLeader, tr.LeaderMs = c.procs[won.node].id, stats.Ms(won.at.Sub(t0))
	first, err := c.waitFor(ctx, from, 30*time.Second, func(e event) bool {
		return e.kind == 'A' && e.node == won.node && e.proposal.After(t0)
	})
	if err != nil {
		return tr, quiet, spurious, fmt.Errorf("no commit by the new leader: %w", err)
	}
	tr.FirstCommitMs = stats.Ms(first.at.Sub(t0))
	tr.Elections = int(first.term - termAfter)
	return tr, quiet, spurious, nil
}

func slicesMax(v []uint64) uint64 {
	var m uint64
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
