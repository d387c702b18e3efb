package chain

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestMempoolAdd(t *testing.T) {
	m := NewMempool(3, 20, 8)
	tests := []struct {
		tx   string
		want error
	}{
		{"", ErrEmptyTx},
		{"123456789", ErrTxTooLarge},
		{"a", nil},
		{"a", ErrDuplicateTx},
		{"bbbbbbbb", nil},
		{"cccccccc", nil},     // 17 bytes, 3 txs
		{"d", ErrMempoolFull}, // count bound
	}
	for _, tt := range tests {
		hash, err := m.Add([]byte(tt.tx))
		if !errors.Is(err, tt.want) {
			t.Fatalf("Add(%q) = %v, want %v", tt.tx, err, tt.want)
		}
		if err == nil && !bytes.Equal(hash, TxHash([]byte(tt.tx))) {
			t.Fatalf("Add(%q) hash = %x", tt.tx, hash)
		}
	}
	if m.Len() != 3 || m.Bytes() != 17 {
		t.Fatalf("Len, Bytes = %d, %d, want 3, 17", m.Len(), m.Bytes())
	}

	byBytes := NewMempool(0, 10, 0)
	for _, tx := range []string{"12345", "6789"} {
		if _, err := byBytes.Add([]byte(tx)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := byBytes.Add([]byte("ab")); !errors.Is(err, ErrMempoolFull) {
		t.Fatalf("byte bound: %v, want ErrMempoolFull", err)
	}
	// Taken txs free room and are no longer duplicates.
	byBytes.Take(1, 0)
	if _, err := byBytes.Add([]byte("12345")); err != nil {
		t.Fatalf("re-add after Take: %v", err)
	}
}

func TestMempoolTakeRequeue(t *testing.T) {
	m := NewMempool(0, 0, 0)
	for i := range 6 {
		if _, err := m.Add(fmt.Appendf(nil, "tx%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name             string
		maxTxs, maxBytes int
		want             []string
	}{
		{"by count", 2, 0, []string{"tx0", "tx1"}},
		{"by bytes", 0, 7, []string{"tx2", "tx3"}},
		{"both", 1, 100, []string{"tx4"}},
	}
	for _, tt := range tests {
		got := m.Take(tt.maxTxs, tt.maxBytes)
		if fmt.Sprintf("%s", got) != fmt.Sprintf("%s", tt.want) {
			t.Fatalf("%s: Take = %s, want %s", tt.name, got, tt.want)
		}
	}
	// A failed proposal goes back to the front, in order, ignoring bounds
	// and skipping txs that are pending again.
	if _, err := m.Add([]byte("tx1")); err != nil {
		t.Fatal(err)
	}
	m.Requeue([][]byte{[]byte("tx0"), []byte("tx1"), nil})
	if got := m.Take(0, 0); fmt.Sprintf("%s", got) != "[tx0 tx5 tx1]" {
		t.Fatalf("after Requeue: %s", got)
	}
	if m.Len() != 0 || m.Bytes() != 0 {
		t.Fatalf("Len, Bytes = %d, %d after draining", m.Len(), m.Bytes())
	}
	if got := m.Take(10, 10); got != nil {
		t.Fatalf("Take of empty = %s", got)
	}
	// An oversized tx at the front is taken alone instead of stalling.
	m.Add([]byte("0123456789"))
	m.Add([]byte("x"))
	if got := m.Take(10, 5); len(got) != 1 || string(got[0]) != "0123456789" {
		t.Fatalf("oversized front tx: %s", got)
	}
	bounded := NewMempool(1, 0, 0)
	bounded.Add([]byte("a"))
	bounded.Requeue([][]byte{[]byte("b")})
	if bounded.Len() != 2 {
		t.Fatal("Requeue respected the bound")
	}
}
