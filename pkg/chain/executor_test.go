package chain

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestKVExecutorParse(t *testing.T) {
	tests := []struct {
		tx         string
		key, value string
		set        bool
	}{
		{"set a 1", "a", "1", true},
		{"set key value with spaces", "key", "value with spaces", true},
		{"set k ", "k", "", true},
		{"set k  v", "k", " v", true},
		{"set  k v", "", "", false}, // empty key
		{"set k", "", "", false},
		{"setk v", "", "", false},
		{"SET k v", "", "", false},
		{"hello world", "", "", false},
		{"set " + strings.Repeat("x", KVMaxKeySize) + " v", strings.Repeat("x", KVMaxKeySize), "v", true},
		{"set " + strings.Repeat("x", KVMaxKeySize+1) + " v", "", "", false},
	}
	for _, tt := range tests {
		res, err := KVExecutor{}.Execute(nil, [][]byte{[]byte(tt.tx)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !tt.set {
			if len(res.Writes) != 0 {
				t.Errorf("%.20q: writes %v, want none", tt.tx, res.Writes)
			}
			continue
		}
		if len(res.Writes) != 1 || string(res.Writes[0].Key) != tt.key || string(res.Writes[0].Value) != tt.value {
			t.Errorf("%.20q: writes %q, want %q=%q", tt.tx, res.Writes, tt.key, tt.value)
		}
	}
}

func TestKVExecutorDeterminism(t *testing.T) {
	prev := bytes.Repeat([]byte{7}, 32)
	txs := [][]byte{[]byte("set a 1"), []byte("noop"), []byte("set b 2"), []byte("set a 3")}
	reordered := [][]byte{txs[2], txs[1], txs[0], txs[3]}
	run := func(prev []byte, txs [][]byte) ExecResult {
		res, err := KVExecutor{}.Execute(prev, txs, func([]byte) ([]byte, bool) { return nil, false })
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := run(prev, txs)
	tests := []struct {
		name     string
		prev     []byte
		txs      [][]byte
		sameRoot bool
	}{
		{"same inputs", prev, txs, true},
		{"same inputs, copied", bytes.Clone(prev), [][]byte{[]byte("set a 1"), []byte("noop"), []byte("set b 2"), []byte("set a 3")}, true},
		{"different order", prev, reordered, false},
		{"different previous root", make([]byte, 32), txs, false},
		{"one value changed", prev, [][]byte{txs[0], txs[1], txs[2], []byte("set a 4")}, false},
		{"key/value boundary moved", prev, [][]byte{txs[0], txs[1], []byte("set b2 "), txs[3]}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(tt.prev, tt.txs)
			if bytes.Equal(got.StateRoot, first.StateRoot) != tt.sameRoot {
				t.Fatalf("same root = %v, want %v", !tt.sameRoot, tt.sameRoot)
			}
			if tt.sameRoot && !reflect.DeepEqual(got.Writes, first.Writes) {
				t.Fatalf("writes differ: %q vs %q", got.Writes, first.Writes)
			}
		})
	}
	// A later write to the same key wins, in the chain's state too.
	s := newSigner(t)
	c := openChain(t, t.TempDir(), s)
	b, err := c.Build(txs, t0, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(b); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Get([]byte("a")); string(v) != "3" {
		t.Fatalf("a = %q, want 3", v)
	}
}

// badExecutor writes a key the store cannot hold.
type badExecutor struct{}

func (badExecutor) Execute(prev []byte, txs [][]byte, _ func([]byte) ([]byte, bool)) (ExecResult, error) {
	return ExecResult{Writes: []Write{{Key: nil, Value: []byte("x")}}, StateRoot: prev}, nil
}

func TestBadExecutorWriteFailsBuild(t *testing.T) {
	s := newSigner(t)
	c, err := Open(Config{Dir: t.TempDir(), ChainID: testChainID, Proposer: s.PublicKey(), Executor: badExecutor{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Build([][]byte{[]byte("x")}, t0, s); err == nil {
		t.Fatal("Build accepted an executor write with an empty key")
	}
}
