package chain

import (
	"crypto/sha256"
	"errors"
	"sync"
)

// Mempool errors; Add returns them unwrapped so callers can map them to
// responses (ErrMempoolFull is back-pressure: retry later).
var (
	ErrMempoolFull = errors.New("mempool full")
	ErrDuplicateTx = errors.New("duplicate transaction")
	ErrTxTooLarge  = errors.New("transaction too large")
	ErrEmptyTx     = errors.New("empty transaction")
)

// Mempool is a bounded FIFO of pending transactions, safe for concurrent use.
// It rejects a transaction that is already pending; it does not know what the
// chain has included (check Chain.TxHeight for that).
type Mempool struct {
	maxTxs, maxBytes, maxTxBytes int

	mu      sync.Mutex
	queue   [][]byte // FIFO; queue[0] is the oldest
	pending map[[sha256.Size]byte]struct{}
	bytes   int
}

// NewMempool returns a mempool holding at most maxTxs transactions and
// maxBytes bytes, each at most maxTxBytes long. A bound ≤ 0 means no limit.
func NewMempool(maxTxs int, maxBytes int, maxTxBytes int) *Mempool {
	return &Mempool{
		maxTxs:     maxTxs,
		maxBytes:   maxBytes,
		maxTxBytes: maxTxBytes,
		pending:    make(map[[sha256.Size]byte]struct{}),
	}
}

// Add queues a copy of tx and returns its hash. It fails with ErrEmptyTx,
// ErrTxTooLarge, ErrDuplicateTx (already pending) or ErrMempoolFull.
func (m *Mempool) Add(tx []byte) (hash []byte, err error) {
	if len(tx) == 0 {
		return nil, ErrEmptyTx
	}
	if m.maxTxBytes > 0 && len(tx) > m.maxTxBytes {
		return nil, ErrTxTooLarge
	}
	sum := sha256.Sum256(tx)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.pending[sum]; dup {
		return nil, ErrDuplicateTx
	}
	if (m.maxTxs > 0 && len(m.queue) >= m.maxTxs) || (m.maxBytes > 0 && m.bytes+len(tx) > m.maxBytes) {
		return nil, ErrMempoolFull
	}
	m.pending[sum] = struct{}{}
	m.queue = append(m.queue, append([]byte(nil), tx...))
	m.bytes += len(tx)
	return sum[:], nil
}

// Take removes and returns the oldest transactions, at most maxTxs of them
// and at most maxBytes in total (≤ 0: no limit). A single transaction larger
// than maxBytes at the front is returned alone, so the queue never stalls.
func (m *Mempool) Take(maxTxs, maxBytes int) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, size := 0, 0
	for n < len(m.queue) && (maxTxs <= 0 || n < maxTxs) {
		l := len(m.queue[n])
		if maxBytes > 0 && size+l > maxBytes && n > 0 {
			break
		}
		size += l
		n++
		if maxBytes > 0 && size >= maxBytes {
			break
		}
	}
	if n == 0 {
		return nil
	}
	out := make([][]byte, n)
	copy(out, m.queue[:n])
	for i := range n {
		delete(m.pending, sha256.Sum256(m.queue[i]))
		m.queue[i] = nil // let the backing array drop the tx
	}
	m.queue = m.queue[n:]
	m.bytes -= size
	return out
}

// Requeue puts txs back at the front, in their order (a proposal that failed
// to commit). It ignores the bounds, since these were admitted before, and
// skips empty transactions and ones pending again meanwhile.
func (m *Mempool) Requeue(txs [][]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	front := make([][]byte, 0, len(txs)+len(m.queue))
	for _, tx := range txs {
		if len(tx) == 0 {
			continue
		}
		sum := sha256.Sum256(tx)
		if _, dup := m.pending[sum]; dup {
			continue
		}
		m.pending[sum] = struct{}{}
		front = append(front, tx)
		m.bytes += len(tx)
	}
	m.queue = append(front, m.queue...)
}

// Len is the number of pending transactions.
func (m *Mempool) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue)
}

// Bytes is the total size of the pending transactions.
func (m *Mempool) Bytes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}
