package chain

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// Write is one key/value assignment produced by executing a block.
type Write struct{ Key, Value []byte }

// ExecResult is the outcome of executing a block's transactions: the writes
// to apply, in order (a later write to the same key wins), and the new state
// root.
type ExecResult struct {
	Writes    []Write
	StateRoot []byte
}

// Executor runs a block's transactions deterministically against a read view
// of the current state.
//
// get reads the state as of before the block; an executor that reads keys it
// wrote earlier in the same block must overlay its own writes. Execute must
// not modify txs or the slices get returns, and must give the same result on
// every node for the same inputs: no clocks, randomness or map iteration.
// Write keys must be 1..MaxStateKeySize bytes.
type Executor interface {
	Execute(prevStateRoot []byte, txs [][]byte, get func(key []byte) ([]byte, bool)) (ExecResult, error)
}

// MaxStateKeySize bounds executor state keys (the store's key limit).
const MaxStateKeySize = 32768

// KVMaxKeySize bounds the keys the KVExecutor sets; longer keys make a tx a
// no-op rather than an error, so no transaction can halt the chain.
const KVMaxKeySize = 1024

// KVExecutor is a minimal deterministic key/value executor. A transaction
// "set <key> <value>" (single spaces; the key is 1..KVMaxKeySize bytes without
// spaces; the value is the rest, spaces included, possibly empty) sets key to
// value. Any other bytes are recorded in the block but change no key.
//
// StateRoot = sha256(prevStateRoot || for each write in order:
// uvarint(len key) || key || uvarint(len value) || value).
type KVExecutor struct{}

var setPrefix = []byte("set ")

// Execute implements Executor.
func (KVExecutor) Execute(prevStateRoot []byte, txs [][]byte, _ func(key []byte) ([]byte, bool)) (ExecResult, error) {
	var writes []Write
	for _, tx := range txs {
		if key, value, ok := parseSet(tx); ok {
			// Copy: the state outlives the block's tx buffers.
			writes = append(writes, Write{
				Key:   append([]byte(nil), key...),
				Value: append(make([]byte, 0, len(value)), value...),
			})
		}
	}
	return ExecResult{Writes: writes, StateRoot: KVStateRoot(prevStateRoot, writes)}, nil
}

// parseSet recognises "set <key> <value>".
func parseSet(tx []byte) (key, value []byte, ok bool) {
	if !bytes.HasPrefix(tx, setPrefix) {
		return nil, nil, false
	}
	rest := tx[len(setPrefix):]
	i := bytes.IndexByte(rest, ' ')
	if i <= 0 || i > KVMaxKeySize {
		return nil, nil, false
	}
	return rest[:i], rest[i+1:], true
}

// KVStateRoot is the KVExecutor's state root over prev and writes.
func KVStateRoot(prev []byte, writes []Write) []byte {
	h := sha256.New()
	h.Write(prev)
	var buf [binary.MaxVarintLen64]byte
	for _, w := range writes {
		writeLenPrefixed(h, buf[:], w.Key)
		writeLenPrefixed(h, buf[:], w.Value)
	}
	return h.Sum(nil)
}

func writeLenPrefixed(h hash.Hash, buf, b []byte) {
	n := binary.PutUvarint(buf, uint64(len(b)))
	h.Write(buf[:n])
	h.Write(b)
}
