// Package commitpath measures the block commit path of a three-node cluster: the real sequencer
// nodes of pkg/sequencer, each on its own loopback address with the real TCP Raft transport and
// on-disk stores synced per commit, fed by calling the leader's SubmitTx directly (no HTTP), so what
// is measured is block building, Raft replication with fsync, and apply — not the API. seqbench runs
// each node in its own process (proc.go); without a binary the three run inside the caller's process.
package commitpath

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seqops/sequencer-operator/internal/bench/loopback"
	"github.com/seqops/sequencer-operator/pkg/failover"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
	sraft "github.com/seqops/sequencer-operator/pkg/raft"
	"github.com/seqops/sequencer-operator/pkg/sequencer"
)

type cluster struct {
	nodes []*sequencer.Node
}

func startCluster(ctx context.Context, dir string, prod failover.Config) (*cluster, error) {
	nw, err := loopback.Pick(3, 2)
	if err != nil {
		return nil, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	c := &cluster{}
	for i := 0; i < 3; i++ {
		cfg := sequencer.Config{
			ID: fmt.Sprintf("node-%d", i), ChainID: "bench", DataDir: filepath.Join(dir, fmt.Sprintf("node-%d", i)),
			RaftBind: nw.Addr(i, 0), RaftAdvertise: nw.Addr(i, 0), HTTPAddr: nw.Addr(i, 1),
			Bootstrap: i == 0, APIToken: "bench", SigningKey: key, Producer: prod,
			Autopilot: sraft.AutopilotConfig{StabilizationTime: 300 * time.Millisecond},
		}
		if i > 0 {
			cfg.Join = "http://" + nw.Addr(0, 1)
		}
		n, err := sequencer.New(cfg, nil)
		if err != nil {
			c.stop()
			return nil, fmt.Errorf("cannot create node %d: %w", i, err)
		}
		c.nodes = append(c.nodes, n)
		if err := n.Start(ctx, true); err != nil {
			c.stop()
			return nil, fmt.Errorf("cannot start node %d: %w", i, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if cfg, err := c.nodes[0].Members(); err == nil {
			voters := 0
			for _, s := range cfg.Servers {
				if s.Suffrage == nodeapi.SuffrageVoter {
					voters++
				}
			}
			if voters == 3 && c.stable(ctx) {
				return c, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.stop()
			return nil, errors.New("cluster did not form three voters within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stable reports whether the same node led, in the same term, for a whole second: promotions of
// new voters can cause an election just after the cluster formed.
func (c *cluster) stable(ctx context.Context) bool {
	l := c.leader()
	if l == nil {
		return false
	}
	term := l.Status().Term
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Second):
	}
	st := l.Status()
	return st.Producing && st.Term == term
}

func (c *cluster) leader() *sequencer.Node {
	for _, n := range c.nodes {
		if n.Status().Producing {
			return n
		}
	}
	return nil
}

// stop kills the leader first, then the followers. A hashicorp/raft Shutdown can block for good in
// the leader's pipeline replication to a peer that is gone (seen in this benchmark); each Kill is
// bounded so one stuck node cannot hang the run, and a stuck one is reported and left behind.
func (c *cluster) stop() {
	order := append([]*sequencer.Node(nil), c.nodes...)
	if l := c.leader(); l != nil {
		for i, n := range order {
			if n == l {
				order[0], order[i] = order[i], order[0]
			}
		}
	}
	for i, n := range order {
		done := make(chan struct{})
		go func() { defer close(done); n.Kill() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			StuckShutdowns.Add(1)
			fmt.Fprintf(os.Stderr, "seqbench: WARNING: node %d of the commit-path cluster did not shut down within 10s (raft.Shutdown blocked); left behind\n", i)
		}
	}
}

// StuckShutdowns counts nodes whose Kill did not return within 10 s (in-process) and node processes
// that did not exit within 15 s of SIGTERM.
var StuckShutdowns atomic.Int64

// blockSeen is one block as the cluster applied it.
type blockSeen struct {
	height  uint64
	built   time.Time // header time: when the leader started building it
	visible time.Time // when the first node (the leader, unless leadership moved) showed it committed
	txs     int
}

// tracker follows every node's head and keeps every block when it is first seen applied, and feeds
// the producing node transactions so that at most limit are outstanding (submitted, not committed).
type tracker struct {
	c         *cluster
	mu        sync.Mutex
	seen      map[uint64]bool
	blocks    []blockSeen
	leader    atomic.Pointer[sequencer.Node]
	committed atomic.Int64
	submitted atomic.Int64
	wake      chan struct{}
	refused   atomic.Int64
}

func newTracker(c *cluster) *tracker {
	t := &tracker{c: c, seen: map[uint64]bool{}, wake: make(chan struct{}, 1)}
	t.leader.Store(c.leader())
	return t
}

// follow records one node's blocks until ctx ends.
func (t *tracker) follow(ctx context.Context, n *sequencer.Node) {
	last := n.Chain().Head().Height
	for ctx.Err() == nil {
		changed := n.Changes()
		head := n.Chain().Head()
		now := time.Now()
		for h := last + 1; h <= head.Height; h++ {
			t.mu.Lock()
			dup := t.seen[h]
			t.seen[h] = true
			t.mu.Unlock()
			if dup {
				continue
			}
			b, err := n.Chain().Block(h)
			if err != nil {
				continue
			}
			bs := blockSeen{height: h, built: time.Unix(0, b.GetHeader().GetTimeUnixNano()), visible: now, txs: len(b.GetTxs())}
			t.mu.Lock()
			t.blocks = append(t.blocks, bs)
			t.mu.Unlock()
			t.committed.Add(int64(bs.txs))
		}
		if head.Height > last {
			last = head.Height
			select {
			case t.wake <- struct{}{}:
			default:
			}
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}

// feed submits unique 100-byte transactions while fewer than limit are outstanding.
func (t *tracker) feed(ctx context.Context, worker int, limit int64) {
	n := int64(worker) << 40
	for ctx.Err() == nil {
		if t.submitted.Load()-t.committed.Load() >= limit {
			t.pause(ctx)
			continue
		}
		leader := t.leader.Load()
		if leader == nil {
			if l := t.c.leader(); l != nil {
				// A new producer: count outstanding transactions from here.
				t.submitted.Store(t.committed.Load())
				t.leader.Store(l)
			}
			t.pause(ctx)
			continue
		}
		n++
		_, err := leader.SubmitTx(ctx, tx(n), false)
		switch {
		case err == nil:
			t.submitted.Add(1)
		case errors.Is(err, nodeapi.ErrNotLeader):
			// Leadership moved: what this node's mempool held is lost to the count, so start over.
			t.refused.Add(1)
			t.leader.Store(t.c.leader())
			t.submitted.Store(t.committed.Load())
			t.pause(ctx)
		default: // a full mempool: wait for a commit
			t.pause(ctx)
		}
	}
}

func (t *tracker) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-t.wake:
	case <-time.After(5 * time.Millisecond):
	}
}

func (t *tracker) window(from, to time.Time) []blockSeen {
	t.mu.Lock()
	defer t.mu.Unlock()
	return inWindow(t.blocks, from, to)
}

// inWindow returns the blocks that became visible in [from, to), by height.
func inWindow(blocks []blockSeen, from, to time.Time) []blockSeen {
	var out []blockSeen
	for _, b := range blocks {
		if !b.visible.Before(from) && b.visible.Before(to) {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].height < out[j].height })
	return out
}

func tx(n int64) []byte {
	s := fmt.Sprintf("set t%015x ", n)
	return []byte(s + strings.Repeat("v", 100-len(s)))
}
