package load

import (
	"context"
	"encoding/hex"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// flaky fails every other submission and then acknowledges, as a node mid-failover would.
type flaky struct {
	mu    sync.Mutex
	calls int
	seen  map[string]int
}

func (f *flaky) SubmitTx(_ context.Context, tx []byte, wait bool) (*nodeapi.TxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.seen[string(tx)]++
	if !wait {
		return nil, errors.New("the generator must wait for commit")
	}
	if f.seen[string(tx)] == 1 {
		return nil, errors.New("no leader")
	}
	return &nodeapi.TxResponse{Hash: hex.EncodeToString(chain.TxHash(tx)), Status: nodeapi.TxCommitted, Height: 9}, nil
}

func TestGeneratorLogsEveryAttemptAndRetriesTheSameBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "load.jsonl")
	node := &flaky{seen: map[string]int{}}
	g, err := Start(context.Background(), path, []Submitter{node, node}, Config{Workers: 2, Keys: 3})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	counts, err := g.Stop()
	if err != nil {
		t.Fatal(err)
	}
	attempts, err := ReadLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != counts.Attempts || counts.Acked == 0 {
		t.Fatalf("log has %d attempts, counts %+v", len(attempts), counts)
	}
	byTx := map[string][]Attempt{}
	for _, a := range attempts {
		byTx[a.Tx] = append(byTx[a.Tx], a)
	}
	for id, as := range byTx {
		for i, a := range as {
			if a.Try != i || a.Hash != as[0].Hash {
				t.Fatalf("%s: attempt %d is try %d with hash %s", id, i, a.Try, a.Hash)
			}
			if a.End.Before(a.Start) {
				t.Fatalf("%s: ends before it starts", id)
			}
		}
		if len(as) >= 2 && (as[0].Acked || !as[1].Acked || as[1].Height != 9) {
			t.Fatalf("%s: first try acked or retry not acked: %+v", id, as)
		}
	}
	for tx, n := range node.seen {
		if n > 2 {
			t.Fatalf("%q sent %d times after its ack", tx, n)
		}
	}
}

func TestTxBytesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for w := 0; w < 8; w++ {
		for s := 0; s < 500; s++ {
			tx := string(TxBytes(w, s, 16))
			if seen[tx] {
				t.Fatalf("duplicate transaction %q", tx)
			}
			seen[tx] = true
		}
	}
}
