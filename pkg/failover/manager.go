// Package failover is the role manager: it follows Raft leadership and runs the block producer only
// while this node leads. A new leader first waits on a Raft barrier so it builds on the committed head;
// losing leadership stops production before the next block; a producer that cannot commit hands
// leadership to a healthy member; a node asked to stop hands leadership over before it goes.
package failover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
	sraft "github.com/seqops/sequencer-operator/pkg/raft"
)

// Config tunes the producer. Zero values take the defaults noted on each field.
type Config struct {
	// BlockTime is the target interval between blocks (default 100ms).
	BlockTime time.Duration
	// MaxTxsPerBlock bounds the transactions in one block (default 10,000).
	MaxTxsPerBlock int
	// MaxBlockBytes bounds the transaction bytes in one block (default 4 MiB).
	MaxBlockBytes int
	// ApplyTimeout bounds one proposal's wait for commit (default max(10 × BlockTime, 1s)).
	ApplyTimeout time.Duration
	// UnhealthyAfter is how many block times without a commit make the leader hand leadership over
	// (default 10).
	UnhealthyAfter int
}

func (c Config) withDefaults() Config {
	if c.BlockTime <= 0 {
		c.BlockTime = 100 * time.Millisecond
	}
	if c.MaxTxsPerBlock <= 0 {
		c.MaxTxsPerBlock = 10_000
	}
	if c.MaxBlockBytes <= 0 {
		c.MaxBlockBytes = 4 << 20
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = max(10*c.BlockTime, time.Second)
	}
	if c.UnhealthyAfter <= 0 {
		c.UnhealthyAfter = 10
	}
	return c
}

// Observer receives the producer's events, for metrics. Every method must be cheap.
type Observer interface {
	// Proposed is called after a block proposal finished, with how long commit took and its error.
	Proposed(height uint64, took time.Duration, err error)
	// LeadershipAcquired is called when the producer starts, with the time from the leadership signal.
	LeadershipAcquired(barrier time.Duration)
	// Transferred is called when this node handed leadership over, with the reason.
	Transferred(reason string, err error)
}

type nopObserver struct{}

func (nopObserver) Proposed(uint64, time.Duration, error) {}
func (nopObserver) LeadershipAcquired(time.Duration)      {}
func (nopObserver) Transferred(string, error)             {}

// TxFailer is told about transactions that were taken for a block that will not be committed by this
// node, so their submitters hear about it at once.
type TxFailer interface {
	Fail(txs [][]byte, err error)
}

// Manager runs the producer while this node leads.
type Manager struct {
	cfg      Config
	node     *sraft.Node
	chain    *chain.Chain
	pool     *chain.Mempool
	signer   *chain.Signer
	failer   TxFailer
	observer Observer
	log      *zap.Logger

	producing atomic.Bool
	resigning atomic.Bool
	// stopAfterBlock asks the producer to stop right after its next committed block, so a hand-over
	// starts with a whole block time ahead of it.
	stopAfterBlock atomic.Bool

	mu         sync.Mutex
	ctx        context.Context
	termCancel context.CancelFunc
	termDone   chan struct{}
}

// New returns a role manager. observer and failer may be nil.
func New(cfg Config, node *sraft.Node, c *chain.Chain, pool *chain.Mempool, signer *chain.Signer, failer TxFailer, observer Observer, log *zap.Logger) *Manager {
	if observer == nil {
		observer = nopObserver{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Manager{cfg: cfg.withDefaults(), node: node, chain: c, pool: pool, signer: signer, failer: failer, observer: observer, log: log}
}

// Producing reports whether the producer is running (this node leads and has passed its barrier).
func (m *Manager) Producing() bool { return m.producing.Load() }

// Run follows leadership until ctx ends. Leadership changes arrive on Raft's leader channel; nothing
// polls.
func (m *Manager) Run(ctx context.Context) {
	defer m.stopTerm()
	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	leaderCh := m.node.LeaderCh()
	// The channel only reports transitions: a node that already leads when Run starts must start too.
	if m.node.IsLeader() {
		m.startTerm(ctx, time.Now())
	}
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader := <-leaderCh:
			if isLeader {
				m.startTerm(ctx, time.Now())
			} else {
				m.stopTerm()
				m.failPending()
			}
		}
	}
}

// Resign stops producing for good and, if this node leads, hands leadership to the most caught-up
// voter. The node stays a member and keeps applying blocks. It is the first step of a graceful shutdown.
func (m *Manager) Resign() error {
	m.resigning.Store(true)
	return m.transfer("", "resign")
}

// Transfer hands leadership to the voter id, or to the most caught-up voter when id is empty. The
// producer stops first, so no proposal races the transfer; if the transfer fails and this node still
// leads, production resumes.
func (m *Manager) Transfer(id string) error {
	return m.transfer(id, "requested")
}

func (m *Manager) transfer(id, reason string) error {
	m.stopAfterNextBlock()
	m.stopTerm()
	if !m.node.IsLeader() {
		if reason == "resign" {
			return nil
		}
		return sraft.ErrNotLeader
	}
	start := time.Now()
	err := m.node.TransferLeadership(id)
	m.observer.Transferred(reason, err)
	if err != nil {
		if m.node.IsLeader() && !m.resigning.Load() {
			m.startTerm(m.runCtx(), time.Now())
		}
		return fmt.Errorf("cannot hand leadership over: %w", err)
	}
	m.log.Info("Handed leadership over", zap.String("to", id), zap.String("reason", reason), zap.Duration("took", time.Since(start)))
	return nil
}

// stopAfterNextBlock lets the producer commit one more block and stop right after it. The new leader's
// first block is due one block time after that block, so a hand-over that takes less than a block time
// costs no slot: the largest gap stays one block time. It gives up after two block times.
func (m *Manager) stopAfterNextBlock() {
	m.mu.Lock()
	done := m.termDone
	m.mu.Unlock()
	if done == nil || !m.producing.Load() {
		return
	}
	m.stopAfterBlock.Store(true)
	defer m.stopAfterBlock.Store(false)
	select {
	case <-done:
	case <-time.After(2 * m.cfg.BlockTime):
	}
}

func (m *Manager) runCtx() context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil {
		return context.Background()
	}
	return m.ctx
}

func (m *Manager) startTerm(parent context.Context, signalled time.Time) {
	if m.resigning.Load() {
		return
	}
	m.stopTerm()
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	m.mu.Lock()
	m.termCancel, m.termDone = cancel, done
	m.mu.Unlock()
	go func() {
		defer close(done)
		m.lead(ctx, signalled)
	}()
}

// stopTerm stops the producer and waits for it, so no block is proposed after it returns.
func (m *Manager) stopTerm() {
	m.mu.Lock()
	cancel, done := m.termCancel, m.termDone
	m.termCancel, m.termDone = nil, nil
	m.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// lead is one leadership term: barrier, then produce until the term ends.
func (m *Manager) lead(ctx context.Context, signalled time.Time) {
	defer m.producing.Store(false)
	// The barrier makes every committed entry applied, so the head we build on is the committed head.
	for {
		err := m.node.Barrier(m.cfg.ApplyTimeout)
		if err == nil {
			break
		}
		if ctx.Err() != nil || !m.node.IsLeader() {
			return
		}
		m.log.Warn("Barrier failed, retrying", zap.Error(err))
		if !sleepCtx(ctx, m.cfg.BlockTime) {
			return
		}
	}
	m.observer.LeadershipAcquired(time.Since(signalled))
	head := m.chain.Head()
	m.log.Info("Producing blocks", zap.Uint64("height", head.Height), zap.Duration("sinceLeadership", time.Since(signalled)))
	m.producing.Store(true)

	// The first block is due one block time after the last committed one, or now if that has
	// passed: a new leader keeps the chain's rhythm instead of waiting a fresh full interval.
	next := nextBlockTime(head.Time, m.cfg.BlockTime, time.Now())
	lastCommit := time.Now()
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if !m.node.IsLeader() {
			return
		}
		block, err := m.produce(ctx)
		switch {
		case err == nil:
			lastCommit = time.Now()
			next = nextBlockTime(time.Unix(0, block.GetHeader().GetTimeUnixNano()), m.cfg.BlockTime, lastCommit)
			if m.stopAfterBlock.Load() {
				m.log.Info("Stopped producing for a hand-over", zap.Uint64("height", block.GetHeader().GetHeight()))
				return
			}
		case errors.Is(err, sraft.ErrNotLeader) || ctx.Err() != nil:
			m.log.Info("Stopped producing: leadership lost", zap.Error(err))
			return
		default:
			m.log.Warn("Block not committed", zap.Error(err))
			next = time.Now().Add(m.cfg.BlockTime)
			if time.Since(lastCommit) > time.Duration(m.cfg.UnhealthyAfter)*m.cfg.BlockTime {
				if m.handOverUnhealthy() {
					return
				}
				// Nobody could take over: keep trying to produce, and hand over again later.
				lastCommit = time.Now()
			}
		}
		timer.Reset(time.Until(next))
	}
}

// produce builds one block from the mempool on the committed head and commits it through Raft.
func (m *Manager) produce(ctx context.Context) (*chainpb.Block, error) {
	txs := m.pool.Take(m.cfg.MaxTxsPerBlock, m.cfg.MaxBlockBytes)
	txs = m.dropCommitted(txs)
	block, err := m.chain.Build(txs, time.Now(), m.signer)
	if err != nil {
		m.pool.Requeue(txs)
		return nil, fmt.Errorf("cannot build block: %w", err)
	}
	data, err := chain.EncodeBlockEntry(block)
	if err != nil {
		m.pool.Requeue(txs)
		return nil, fmt.Errorf("cannot encode block %d: %w", block.GetHeader().GetHeight(), err)
	}
	if ctx.Err() != nil {
		m.pool.Requeue(txs)
		return nil, ctx.Err()
	}
	start := time.Now()
	_, _, err = m.node.Apply(data, m.cfg.ApplyTimeout)
	m.observer.Proposed(block.GetHeader().GetHeight(), time.Since(start), err)
	if err != nil {
		// The entry may still commit under the next leader; if it does, every node's FSM announces
		// it. Here it counts as not committed: its submitters are told to check or resubmit, and a
		// resubmission of a transaction that did commit is answered from the chain's index.
		if m.failer != nil {
			m.failer.Fail(txs, fmt.Errorf("block %d was not committed: %w", block.GetHeader().GetHeight(), err))
		}
		return nil, err
	}
	return block, nil
}

// dropCommitted removes transactions the chain already holds, so a resubmitted transaction is never
// included twice.
func (m *Manager) dropCommitted(txs [][]byte) [][]byte { return m.chain.Uncommitted(txs) }

// failPending tells the submitters of transactions still in the mempool of a node that no longer
// leads to resubmit: a follower forwards transactions instead of producing them.
func (m *Manager) failPending() {
	txs := m.pool.Take(m.pool.Len(), m.pool.Bytes())
	if len(txs) > 0 && m.failer != nil {
		m.failer.Fail(txs, sraft.ErrNotLeader)
	}
}

// handOverUnhealthy runs on the producer's own goroutine, so it transfers directly instead of
// stopping the term it is part of.
func (m *Manager) handOverUnhealthy() bool {
	m.log.Warn("Producer cannot commit, handing leadership over", zap.Int("blockTimes", m.cfg.UnhealthyAfter))
	err := m.node.TransferLeadership("")
	m.observer.Transferred("unhealthy", err)
	if err != nil {
		m.log.Error("Cannot hand leadership over", zap.Error(err))
		return false
	}
	return true
}

// nextBlockTime is when the block after one made at last is due: one block time later, or now if
// that has passed.
func nextBlockTime(last time.Time, blockTime time.Duration, now time.Time) time.Time {
	if last.IsZero() {
		return now
	}
	next := last.Add(blockTime)
	if next.Before(now) {
		return now
	}
	return next
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
