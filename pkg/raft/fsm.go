package raft

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	hraft "github.com/hashicorp/raft"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

// Committed describes a block the FSM applied: it is in the chain store and may now be served,
// announced and acknowledged.
type Committed struct {
	// Index is the block's Raft log index.
	Index uint64
	// Block is the committed block.
	Block *chainpb.Block
}

// ApplyResult is the FSM's response to a block entry, returned by Node.Apply on the leader.
type ApplyResult struct {
	Height uint64
	// Replayed is true when the block was already in the store (a log replay after a restart).
	Replayed bool
}

// FSM applies full blocks from the Raft log to the chain, after the chain has validated them. An
// entry that cannot be decoded or fails validation halts the FSM: it applies nothing more and reports
// the error once on Halted, so the node stops loudly instead of skipping a block.
type FSM struct {
	chain     *chain.Chain
	onCommit  func(Committed)
	onRestore func()

	mu       sync.Mutex
	haltErr  error
	haltedCh chan error

	// configIndex is the log index of the latest committed configuration: hashicorp/raft does not
	// expose it, and membership compare-and-set needs it.
	configIndex atomic.Uint64
	// afterRestore lets the Node refresh what a snapshot replaced (the configuration index).
	afterRestore func()
}

// StoreConfiguration implements hraft.ConfigurationStore: Raft calls it for every committed
// configuration entry.
func (f *FSM) StoreConfiguration(index uint64, _ hraft.Configuration) {
	f.raiseConfigIndex(index)
}

func (f *FSM) raiseConfigIndex(index uint64) {
	for {
		cur := f.configIndex.Load()
		if index <= cur || f.configIndex.CompareAndSwap(cur, index) {
			return
		}
	}
}

// ConfigIndex is the log index of the latest committed configuration this FSM has seen.
func (f *FSM) ConfigIndex() uint64 { return f.configIndex.Load() }

// NewFSM returns an FSM over c. onCommit runs after each newly applied block (not for replays);
// onRestore after a snapshot was installed. Both run on Raft's apply goroutine: keep them short.
func NewFSM(c *chain.Chain, onCommit func(Committed), onRestore func()) *FSM {
	if onCommit == nil {
		onCommit = func(Committed) {}
	}
	if onRestore == nil {
		onRestore = func() {}
	}
	return &FSM{chain: c, onCommit: onCommit, onRestore: onRestore, haltedCh: make(chan error, 1)}
}

// Halted delivers the error that halted the FSM.
func (f *FSM) Halted() <-chan error { return f.haltedCh }

// Err is the error that halted the FSM, nil while it runs.
func (f *FSM) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.haltErr
}

func (f *FSM) halt(err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.haltErr == nil {
		f.haltErr = err
		f.haltedCh <- err
	}
	return f.haltErr
}

// Apply implements hraft.FSM.
func (f *FSM) Apply(l *hraft.Log) any {
	if l.Type != hraft.LogCommand {
		return nil
	}
	if err := f.Err(); err != nil {
		return err
	}
	entry, err := chain.DecodeEntry(l.Data)
	if err != nil {
		return f.halt(fmt.Errorf("raft entry %d cannot be decoded: %w", l.Index, err))
	}
	block := entry.GetBlock()
	if block == nil {
		return f.halt(fmt.Errorf("raft entry %d has an unknown command", l.Index))
	}
	applied, err := f.chain.Apply(block)
	if err != nil {
		return f.halt(fmt.Errorf("raft entry %d (block %d) rejected: %w", l.Index, block.GetHeader().GetHeight(), err))
	}
	if applied {
		f.onCommit(Committed{Index: l.Index, Block: block})
	}
	return ApplyResult{Height: block.GetHeader().GetHeight(), Replayed: !applied}
}

// Snapshot implements hraft.FSM. The chain's snapshot is a point-in-time view, so taking it is fast
// and Persist streams it while blocks keep being applied.
func (f *FSM) Snapshot() (hraft.FSMSnapshot, error) {
	if err := f.Err(); err != nil {
		return nil, fmt.Errorf("cannot snapshot a halted chain: %w", err)
	}
	s, err := f.chain.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("cannot snapshot chain: %w", err)
	}
	return &fsmSnapshot{snap: s}, nil
}

// Restore implements hraft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.chain.Restore(rc); err != nil {
		return fmt.Errorf("cannot restore chain from raft snapshot: %w", err)
	}
	if f.afterRestore != nil {
		f.afterRestore()
	}
	f.onRestore()
	return nil
}

type fsmSnapshot struct {
	snap *chain.Snapshot
}

// Persist always closes or cancels the sink.
func (s *fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	if _, err := s.snap.WriteTo(sink); err != nil {
		return errors.Join(fmt.Errorf("cannot write chain snapshot: %w", err), sink.Cancel())
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("cannot close chain snapshot: %w", err)
	}
	return nil
}

func (s *fsmSnapshot) Release() {}
