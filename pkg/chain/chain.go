package chain

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	iradix "github.com/hashicorp/go-immutable-radix"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

// StoreFileName is the name of the store file inside Config.Dir.
const StoreFileName = "chain.db"

// Config configures a Chain. Open copies it; later changes have no effect.
type Config struct {
	// Dir holds the store file; it is created if missing.
	Dir string
	// ChainID is the only chain_id accepted in blocks.
	ChainID string
	// Proposer is the trusted sequencer public key: every block must be
	// proposed and signed by it.
	Proposer ed25519.PublicKey
	// Executor executes transactions; nil means KVExecutor.
	Executor Executor
}

// Head describes the newest block. The zero Head (Height 0, nil Hash, zero
// Time, nil StateRoot) is an empty chain.
type Head struct {
	Height    uint64
	Hash      []byte
	Time      time.Time
	StateRoot []byte
}

// ValidationError says which block field failed validation and why.
type ValidationError struct {
	Height uint64 // height claimed by the block (0 if it had no header)
	Field  string // protobuf field name: header, chain_id, height, parent_hash, time_unix_nano, proposer, signature, tx_root, state_root, txs, hash
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid block %d: %s: %s", e.Height, e.Field, e.Reason)
}

func invalid(b *chainpb.Block, field, format string, args ...any) *ValidationError {
	return &ValidationError{Height: b.GetHeader().GetHeight(), Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ForkError reports a block that conflicts with a stored block at the same
// height (or with the stored history around it). It means two different
// blocks exist for one height and must stop the node loudly.
type ForkError struct {
	Height uint64
	Stored []byte // hash of the stored block (or the stored neighbour that disagrees)
	Got    []byte // hash of the offered block
	Detail string // optional explanation
}

func (e *ForkError) Error() string {
	msg := fmt.Sprintf("fork at height %d: stored block %x, got %x", e.Height, e.Stored, e.Got)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Chain is the deterministic state machine the Raft FSM drives: validated
// blocks and executor state, persisted in one bbolt file.
//
// Writers (Apply, Restore, Backfill) are serialised; readers never wait for
// them: they read an immutable view that writers replace atomically after
// their bbolt transaction is synced.
type Chain struct {
	chainID  string
	proposer ed25519.PublicKey
	exec     Executor
	store    *Store
	index    *txIndex

	writeMu sync.Mutex // serialises writers
	closed  bool       // guarded by writeMu

	view  atomic.Pointer[chainView]
	built atomic.Pointer[builtBlock]
}

// chainView is one consistent, immutable state of the chain.
type chainView struct {
	height    uint64
	hash      []byte
	timeNanos int64
	stateRoot []byte
	head      *chainpb.Block // nil for an empty chain
	state     *iradix.Tree   // executor state: string(key) → []byte
	gaps      []gap          // missing historical blocks, ascending
}

func (v *chainView) get(key []byte) ([]byte, bool) {
	val, ok := v.state.Get(key)
	if !ok {
		return nil, false
	}
	return val.([]byte), true
}

// Open opens the chain stored in cfg.Dir, creating it if needed. Head, state,
// tx index and gaps are read back from the file, so no replay is needed after
// a restart.
func Open(cfg Config) (*Chain, error) {
	switch {
	case cfg.Dir == "":
		return nil, errors.New("cannot open chain: no directory configured")
	case cfg.ChainID == "" || !utf8.ValidString(cfg.ChainID):
		return nil, fmt.Errorf("cannot open chain: chain ID %q must be non-empty UTF-8", cfg.ChainID)
	case len(cfg.Proposer) != ed25519.PublicKeySize:
		return nil, fmt.Errorf("cannot open chain: proposer key has %d bytes, want %d", len(cfg.Proposer), ed25519.PublicKeySize)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot open chain: %w", err)
	}
	store, err := OpenStore(filepath.Join(cfg.Dir, StoreFileName))
	if err != nil {
		return nil, fmt.Errorf("cannot open chain: %w", err)
	}
	c := &Chain{
		chainID:  cfg.ChainID,
		proposer: append(ed25519.PublicKey(nil), cfg.Proposer...),
		exec:     cfg.Executor,
		store:    store,
	}
	if c.exec == nil {
		c.exec = KVExecutor{}
	}
	v, err := c.load()
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("cannot open chain from %s: %w", store.Path(), err)
	}
	c.view.Store(v)
	index, err := openTxIndex(filepath.Join(cfg.Dir, TxIndexFileName))
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("cannot open chain: %w", err)
	}
	c.index = index
	if err := c.reindex(v.height); err != nil {
		_ = index.close()
		_ = store.Close()
		return nil, fmt.Errorf("cannot open chain: %w", err)
	}
	index.start()
	return c, nil
}

// load reads the persisted view and records the chain ID on first use.
func (c *Chain) load() (*chainView, error) {
	v := &chainView{state: iradix.New()}
	var storedID []byte
	err := c.store.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		storedID = bytes.Clone(meta.Get(keyChainID))
		if raw := meta.Get(keyHead); raw != nil {
			h, err := parseHeight(raw)
			if err != nil {
				return fmt.Errorf("head: %w", err)
			}
			v.height = h
		}
		if raw := meta.Get(keyGaps); raw != nil {
			gaps, err := decodeGaps(raw)
			if err != nil {
				return err
			}
			v.gaps = gaps
		}
		if v.height > 0 {
			raw := tx.Bucket(bucketBlocks).Get(heightKey(v.height))
			if raw == nil {
				return fmt.Errorf("head block %d is missing", v.height)
			}
			b, err := UnmarshalBlock(raw)
			if err != nil {
				return fmt.Errorf("head block %d: %w", v.height, err)
			}
			if b.Header.Height != v.height {
				return fmt.Errorf("block stored at height %d claims height %d", v.height, b.Header.Height)
			}
			v.setHead(b)
		}
		txn := v.state.Txn()
		err := tx.Bucket(bucketState).ForEach(func(k, val []byte) error {
			txn.Insert(bytes.Clone(k), append(make([]byte, 0, len(val)), val...))
			return nil
		})
		v.state = txn.CommitOnly()
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case storedID == nil:
		err = c.store.update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyChainID, []byte(c.chainID))
		})
		if err != nil {
			return nil, fmt.Errorf("cannot record chain ID: %w", err)
		}
	case string(storedID) != c.chainID:
		return nil, fmt.Errorf("store belongs to chain %q, not %q", storedID, c.chainID)
	}
	return v, nil
}

func (v *chainView) setHead(b *chainpb.Block) {
	v.height = b.Header.Height
	v.hash = BlockHash(b)
	v.timeNanos = b.Header.TimeUnixNano
	v.stateRoot = b.Header.StateRoot
	v.head = b
}

// Head returns the newest block's summary. It never blocks on writers.
func (c *Chain) Head() Head {
	v := c.view.Load()
	if v.height == 0 {
		return Head{}
	}
	return Head{
		Height:    v.height,
		Hash:      bytes.Clone(v.hash),
		Time:      time.Unix(0, v.timeNanos).UTC(),
		StateRoot: bytes.Clone(v.stateRoot),
	}
}

// Get reads a key of the executor state at the current head.
func (c *Chain) Get(key []byte) ([]byte, bool) {
	val, ok := c.view.Load().get(key)
	return bytes.Clone(val), ok
}

// Build makes and signs the next block on the current head from txs, without
// changing the chain: the block takes effect only when Apply commits it (after
// Raft has). Its time is max(now, head time + 1ns), so time strictly
// increases even if the clock steps back. The block keeps a reference to txs.
func (c *Chain) Build(txs [][]byte, now time.Time, s *Signer) (*chainpb.Block, error) {
	v := c.view.Load()
	height := v.height + 1
	if s == nil {
		return nil, fmt.Errorf("cannot build block %d: no signer", height)
	}
	if !bytes.Equal(s.PublicKey(), c.proposer) {
		return nil, fmt.Errorf("cannot build block %d: signer key %x is not the trusted proposer %x", height, []byte(s.PublicKey()), []byte(c.proposer))
	}
	for i, tx := range txs {
		if len(tx) == 0 {
			return nil, fmt.Errorf("cannot build block %d: tx %d is empty", height, i)
		}
	}
	t := now.UnixNano()
	if t <= v.timeNanos {
		t = v.timeNanos + 1
	}
	res, err := c.execute(v, txs)
	if err != nil {
		return nil, fmt.Errorf("cannot build block %d: %w", height, err)
	}
	b := &chainpb.Block{
		Header: &chainpb.Header{
			ChainId:      c.chainID,
			Height:       height,
			ParentHash:   bytes.Clone(v.hash),
			TimeUnixNano: t,
			TxRoot:       TxRoot(txs),
			StateRoot:    res.StateRoot,
		},
		Txs: txs,
	}
	s.Sign(b)
	c.built.Store(&builtBlock{hash: BlockHash(b), res: res})
	return b, nil
}

// builtBlock remembers the execution result of the block this node built last. When the same block comes
// back from the Raft log, validation reuses it instead of executing the transactions a second time. The
// block hash covers the parent hash, the tx root and the state root, and the tx root is still checked
// against the transactions, so the reuse applies only to the very state and transactions it was computed on.
type builtBlock struct {
	hash []byte
	res  ExecResult
}

func (c *Chain) builtResult(b *chainpb.Block) (ExecResult, bool) {
	bb := c.built.Load()
	if bb == nil || !bytes.Equal(bb.hash, BlockHash(b)) {
		return ExecResult{}, false
	}
	return bb.res, true
}

// execute runs the executor against v's state and checks its writes can be
// stored, so that a bad write fails validation instead of the store commit.
func (c *Chain) execute(v *chainView, txs [][]byte) (ExecResult, error) {
	res, err := c.exec.Execute(v.stateRoot, txs, v.get)
	if err != nil {
		return ExecResult{}, fmt.Errorf("execution failed: %w", err)
	}
	for i, w := range res.Writes {
		if len(w.Key) == 0 || len(w.Key) > MaxStateKeySize {
			return ExecResult{}, fmt.Errorf("execution produced write %d with a %d-byte key, want 1..%d", i, len(w.Key), MaxStateKeySize)
		}
		if int64(len(w.Value)) > bolt.MaxValueSize {
			return ExecResult{}, fmt.Errorf("execution produced write %d with a %d-byte value", i, len(w.Value))
		}
	}
	return res, nil
}

// Validate checks that b is a valid next block on the current head. It
// returns a *ValidationError naming the first field that fails.
func (c *Chain) Validate(b *chainpb.Block) error {
	_, err := c.validate(c.view.Load(), b)
	if err != nil {
		return err // keep a nil *ValidationError from becoming a non-nil error
	}
	return nil
}

// validate checks b against v, cheapest checks first; it returns the
// execution result so Apply does not execute twice.
func (c *Chain) validate(v *chainView, b *chainpb.Block) (ExecResult, *ValidationError) {
	if b == nil || b.Header == nil {
		return ExecResult{}, &ValidationError{Field: "header", Reason: "missing"}
	}
	h := b.Header
	if h.ChainId != c.chainID {
		return ExecResult{}, invalid(b, "chain_id", "%q, want %q", h.ChainId, c.chainID)
	}
	if h.Height != v.height+1 {
		return ExecResult{}, invalid(b, "height", "%d, want %d (head %d)", h.Height, v.height+1, v.height)
	}
	if !bytes.Equal(h.ParentHash, v.hash) {
		return ExecResult{}, invalid(b, "parent_hash", "%x, want head hash %x", h.ParentHash, v.hash)
	}
	if h.TimeUnixNano <= v.timeNanos {
		return ExecResult{}, invalid(b, "time_unix_nano", "%d is not after head time %d", h.TimeUnixNano, v.timeNanos)
	}
	if !bytes.Equal(h.Proposer, c.proposer) {
		return ExecResult{}, invalid(b, "proposer", "%x is not the trusted sequencer key %x", h.Proposer, []byte(c.proposer))
	}
	if err := VerifyBlockSignature(b, c.proposer); err != nil {
		return ExecResult{}, invalid(b, "signature", "%v", err)
	}
	for i, tx := range b.Txs {
		if len(tx) == 0 {
			return ExecResult{}, invalid(b, "txs", "tx %d is empty", i)
		}
	}
	if root := TxRoot(b.Txs); !bytes.Equal(h.TxRoot, root) {
		return ExecResult{}, invalid(b, "tx_root", "%x, want %x", h.TxRoot, root)
	}
	res, ok := c.builtResult(b)
	if !ok {
		var err error
		if res, err = c.execute(v, b.Txs); err != nil {
			return ExecResult{}, invalid(b, "txs", "%v", err)
		}
	}
	if !bytes.Equal(h.StateRoot, res.StateRoot) {
		return ExecResult{}, invalid(b, "state_root", "%x, re-execution gives %x", h.StateRoot, res.StateRoot)
	}
	return res, nil
}

// Apply validates b and, if it is the next block, persists the block, its
// state writes and tx index in one synced bbolt transaction, then publishes
// the new head. It returns applied=true for a new block.
//
// A block at or below the head that equals the stored block is an idempotent
// replay (Raft replays its log after a restart): (false, nil). A different
// block there is a *ForkError. Any other failure leaves the chain unchanged.
// Apply keeps a reference to b; callers must not modify it afterwards.
func (c *Chain) Apply(b *chainpb.Block) (applied bool, err error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed {
		return false, ErrClosed
	}
	v := c.view.Load()
	if b != nil && b.Header != nil && b.Header.Height >= 1 && b.Header.Height <= v.height {
		return false, c.replayLocked(v, b)
	}
	res, verr := c.validate(v, b)
	if verr != nil {
		return false, verr
	}
	height := b.Header.Height
	data, err := MarshalBlock(b)
	if err != nil {
		return false, fmt.Errorf("cannot append block %d: %w", height, err)
	}
	err = c.store.update(func(tx *bolt.Tx) error {
		if err := putBlock(tx, height, data); err != nil {
			return err
		}
		state := tx.Bucket(bucketState)
		for _, w := range sortedWrites(res.Writes) {
			if err := state.Put(w.Key, w.Value); err != nil {
				return fmt.Errorf("state key %x: %w", w.Key, err)
			}
		}
		return tx.Bucket(bucketMeta).Put(keyHead, heightKey(height))
	})
	if err != nil {
		return false, fmt.Errorf("cannot append block %d: %w", height, err)
	}
	c.index.add(height, b.Txs)
	nv := &chainView{state: applyWrites(v.state, res.Writes), gaps: v.gaps}
	nv.setHead(b)
	c.view.Store(nv)
	return true, nil
}

// replayLocked handles a block at or below the head.
func (c *Chain) replayLocked(v *chainView, b *chainpb.Block) error {
	height := b.Header.Height
	stored, err := c.Block(height)
	switch {
	case err == nil:
		if got, want := BlockHash(b), BlockHash(stored); !bytes.Equal(got, want) {
			return &ForkError{Height: height, Stored: want, Got: got}
		}
		return nil
	case !errors.Is(err, ErrNotFound):
		return fmt.Errorf("cannot check replayed block %d: %w", height, err)
	}
	// Not stored: a historical block inside a gap left by a snapshot restore.
	// It cannot change the state; store it if it is the next one to backfill.
	if g, ok := gapContaining(v.gaps, height); ok && g.to == height {
		nv, err := c.backfillLocked(v, b)
		if err != nil {
			return err
		}
		c.view.Store(nv)
		return nil
	}
	if b.Header.ChainId != c.chainID {
		return invalid(b, "chain_id", "%q, want %q", b.Header.ChainId, c.chainID)
	}
	if err := VerifyBlockSignature(b, c.proposer); err != nil {
		return invalid(b, "signature", "%v", err)
	}
	return nil
}

// putBlock stores a block. Its transactions are indexed by the tx index, outside this transaction.
func putBlock(tx *bolt.Tx, height uint64, data []byte) error {
	blocks := tx.Bucket(bucketBlocks)
	blocks.FillPercent = 0.9 // keys are appended in order: pack pages densely
	if err := blocks.Put(heightKey(height), data); err != nil {
		return fmt.Errorf("block: %w", err)
	}
	return nil
}

// sortedWrites orders writes by key for the store: inserts in key order touch each B+tree page once
// instead of once per write. The sort is stable, so of two writes to one key the later still lands last.
func sortedWrites(ws []Write) []Write {
	out := slices.Clone(ws)
	slices.SortStableFunc(out, func(a, b Write) int { return bytes.Compare(a.Key, b.Key) })
	return out
}

func applyWrites(t *iradix.Tree, writes []Write) *iradix.Tree {
	if len(writes) == 0 {
		return t
	}
	txn := t.Txn()
	for _, w := range writes {
		txn.Insert(bytes.Clone(w.Key), append(make([]byte, 0, len(w.Value)), w.Value...))
	}
	return txn.CommitOnly()
}

// Block returns the stored block at height, or an error wrapping ErrNotFound.
// The caller owns the returned block.
func (c *Chain) Block(height uint64) (*chainpb.Block, error) {
	if v := c.view.Load(); v.head != nil && height == v.height {
		// Served from memory; cloned because callers may modify what they get.
		return proto.Clone(v.head).(*chainpb.Block), nil
	}
	var b *chainpb.Block
	err := c.store.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketBlocks).Get(heightKey(height))
		if raw == nil {
			return ErrNotFound
		}
		var err error
		b, err = UnmarshalBlock(raw) // copies out of the mmap
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read block %d: %w", height, err)
	}
	return b, nil
}

// Uncommitted returns the transactions no committed block holds, in order. The producer uses it so a
// resubmitted transaction is never included twice.
func (c *Chain) Uncommitted(txs [][]byte) [][]byte {
	hashes := make([][]byte, len(txs))
	for i, tx := range txs {
		hashes[i] = TxHash(tx)
	}
	known := c.index.known(hashes)
	out := txs[:0:0]
	for i, tx := range txs {
		if !known[i] {
			out = append(out, tx)
		}
	}
	return out
}

// TxHeight returns the height of the earliest stored block that includes the
// transaction with this hash.
func (c *Chain) TxHeight(hash []byte) (uint64, bool) {
	if len(hash) != HashSize {
		return 0, false
	}
	return c.index.lookup(hash)
}

// Close closes the store. Later writes return ErrClosed.
func (c *Chain) Close() error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return errors.Join(c.index.close(), c.store.Close())
}
