package chain

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TxIndexFileName is the tx index's file inside Config.Dir.
const TxIndexFileName = "txindex.db"

var keyIndexed = []byte("indexed")

// Flush policy of the tx index: often enough that a restart re-indexes little, rarely enough that
// each batch is large and sorted. Hashes are random keys, so a batch dirties about one B+tree leaf
// page per key until it is large enough to share pages: indexing 200,000 transactions in batches of
// 3,000 took 7.1 s and allocated 1.26 GB, in batches of 20,000 2.3 s and 0.39 GB. At 250 ms the
// flushes were the largest allocator of a loaded node and their bursts of CPU and page writes
// delayed its commits.
const (
	indexFlushInterval  = 2 * time.Second
	indexFlushThreshold = 50_000
)

// txIndex maps transaction hashes to the height of the block that first included them.
//
// Applying a block must fit the commit budget, and a thousand random-key inserts into a B+tree per
// block cost more than the rest of Apply together (they dirty a thousand leaf pages). So entries of
// applied blocks go to memory at once, where lookups see them, and reach their own file in sorted
// batches off the commit path. The index is derived data: at open, blocks above the persisted height
// are indexed again from the chain store, so a crash loses nothing.
type txIndex struct {
	store *Store

	mu        sync.RWMutex
	pending   map[string]uint64
	top       uint64 // newest applied height in pending
	persisted uint64 // every applied block up to here is on disk
	flushErr  error

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func openTxIndex(path string) (*txIndex, error) {
	store, err := OpenStore(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open tx index: %w", err)
	}
	x := &txIndex{store: store, pending: map[string]uint64{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	err = store.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketMeta).Get(keyIndexed)
		if raw == nil {
			return nil
		}
		h, err := parseHeight(raw)
		x.persisted, x.top = h, h
		return err
	})
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("cannot read tx index %s: %w", path, err)
	}
	return x, nil
}

func (x *txIndex) start() { go x.loop() }

// add records an applied block's transactions; it only touches memory.
func (x *txIndex) add(height uint64, txs [][]byte) {
	x.mu.Lock()
	for _, t := range txs {
		key := string(TxHash(t))
		if old, ok := x.pending[key]; ok && old <= height {
			continue
		}
		x.pending[key] = height
	}
	if height > x.top {
		x.top = height
	}
	full := len(x.pending) >= indexFlushThreshold
	x.mu.Unlock()
	if full {
		select {
		case x.wake <- struct{}{}:
		default:
		}
	}
}

// addNow writes a historical block's transactions straight to disk: backfilled blocks lie below the
// persisted height, where a restart would not index them again.
func (x *txIndex) addNow(height uint64, txs [][]byte) error {
	hk := heightKey(height)
	return x.store.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTxs)
		for _, t := range txs {
			hash := TxHash(t)
			if old := b.Get(hash); old != nil {
				if h, err := parseHeight(old); err == nil && h <= height {
					continue
				}
			}
			if err := b.Put(hash, hk); err != nil {
				return fmt.Errorf("tx index: %w", err)
			}
		}
		return nil
	})
}

// lookup returns the earliest inclusion height known in memory or on disk.
func (x *txIndex) lookup(hash []byte) (uint64, bool) {
	x.mu.RLock()
	mem, inMem := x.pending[string(hash)]
	x.mu.RUnlock()
	var disk uint64
	var onDisk bool
	_ = x.store.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketTxs).Get(hash)
		if raw == nil {
			return nil
		}
		h, err := parseHeight(raw)
		disk, onDisk = h, err == nil
		return nil
	})
	switch {
	case inMem && onDisk:
		return min(mem, disk), true
	case inMem:
		return mem, true
	}
	return disk, onDisk
}

// known reports which of the hashes are indexed, with one lock and one read transaction for all.
func (x *txIndex) known(hashes [][]byte) []bool {
	out := make([]bool, len(hashes))
	x.mu.RLock()
	for i, h := range hashes {
		_, out[i] = x.pending[string(h)]
	}
	x.mu.RUnlock()
	_ = x.store.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTxs)
		for i, h := range hashes {
			if !out[i] && b.Get(h) != nil {
				out[i] = true
			}
		}
		return nil
	})
	return out
}

func (x *txIndex) loop() {
	defer close(x.done)
	t := time.NewTicker(indexFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-x.stop:
			return
		case <-t.C:
		case <-x.wake:
		}
		if err := x.flush(); err != nil {
			x.mu.Lock()
			x.flushErr = err
			x.mu.Unlock()
		}
	}
}

// flush writes the pending entries in one sorted batch and records up to which height the index is
// complete on disk.
func (x *txIndex) flush() error {
	x.mu.RLock()
	if len(x.pending) == 0 && x.top == x.persisted {
		x.mu.RUnlock()
		return nil
	}
	type entry struct {
		key    string
		height uint64
	}
	batch := make([]entry, 0, len(x.pending))
	for k, h := range x.pending {
		batch = append(batch, entry{k, h})
	}
	top := x.top
	x.mu.RUnlock()
	sort.Slice(batch, func(i, j int) bool { return batch[i].key < batch[j].key })
	err := x.store.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTxs)
		for _, e := range batch {
			key := []byte(e.key)
			if old := b.Get(key); old != nil {
				if h, err := parseHeight(old); err == nil && h <= e.height {
					continue
				}
			}
			if err := b.Put(key, heightKey(e.height)); err != nil {
				return fmt.Errorf("tx index: %w", err)
			}
		}
		return tx.Bucket(bucketMeta).Put(keyIndexed, heightKey(top))
	})
	if err != nil {
		return fmt.Errorf("cannot flush tx index: %w", err)
	}
	x.mu.Lock()
	for _, e := range batch {
		if x.pending[e.key] == e.height {
			delete(x.pending, e.key)
		}
	}
	x.persisted = top
	x.mu.Unlock()
	return nil
}

// err reports a failed background flush.
func (x *txIndex) err() error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.flushErr
}

func (x *txIndex) close() error {
	close(x.stop)
	<-x.done
	err := x.flush()
	if cerr := x.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// reindex indexes the stored blocks above the persisted height, after a crash or an unclean stop.
func (c *Chain) reindex(head uint64) error {
	x := c.index
	for h := x.persisted + 1; h <= head; h++ {
		b, err := c.Block(h)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // inside a gap left by a snapshot restore: backfill indexes it
			}
			return fmt.Errorf("cannot re-index block %d: %w", h, err)
		}
		x.add(h, b.Txs)
	}
	return x.flush()
}
