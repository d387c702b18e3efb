package sequencer

import (
	"sync"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

// txResult is what a submitter waiting on a transaction learns.
type txResult struct {
	height uint64
	err    error
}

// txWaiters connects submitters to commits: a transaction is acknowledged only when a block holding
// it was applied from the committed Raft log.
type txWaiters struct {
	mu      sync.Mutex
	waiting map[string][]chan txResult
}

func newTxWaiters() *txWaiters { return &txWaiters{waiting: make(map[string][]chan txResult)} }

// wait registers interest in a transaction; call cancel when no longer waiting.
func (w *txWaiters) wait(hash []byte) (ch <-chan txResult, cancel func()) {
	c := make(chan txResult, 1)
	key := string(hash)
	w.mu.Lock()
	w.waiting[key] = append(w.waiting[key], c)
	w.mu.Unlock()
	return c, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.waiting[key]
		for i, x := range list {
			if x == c {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.waiting, key)
		} else {
			w.waiting[key] = list
		}
	}
}

func (w *txWaiters) committed(b *chainpb.Block) {
	height := b.GetHeader().GetHeight()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.waiting) == 0 {
		return
	}
	for _, tx := range b.GetTxs() {
		w.resolve(string(chain.TxHash(tx)), txResult{height: height})
	}
}

// Fail implements failover.TxFailer: the block holding these transactions was not committed here.
func (w *txWaiters) Fail(txs [][]byte, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, tx := range txs {
		w.resolve(string(chain.TxHash(tx)), txResult{err: err})
	}
}

func (w *txWaiters) resolve(key string, r txResult) {
	for _, c := range w.waiting[key] {
		c <- r
	}
	delete(w.waiting, key)
}
