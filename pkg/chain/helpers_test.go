package chain

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

const testChainID = "test-chain"

// t0 is the test clock's start; block i is built at t0 + i seconds.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newSigner(t testing.TB) *Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return NewSigner(priv)
}

func openChain(t testing.TB, dir string, s *Signer) *Chain {
	t.Helper()
	c, err := Open(Config{Dir: dir, ChainID: testChainID, Proposer: s.PublicKey()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// txsFor returns n distinct "set" transactions for block height h.
func txsFor(h uint64, n int) [][]byte {
	txs := make([][]byte, n)
	for i := range txs {
		txs[i] = fmt.Appendf(nil, "set k%d-%d v%d at height %d", h, i, i, h)
	}
	return txs
}

// grow builds and applies blocks until the chain has height n.
func grow(t testing.TB, c *Chain, s *Signer, n uint64) []*chainpb.Block {
	t.Helper()
	var out []*chainpb.Block
	for h := c.Head().Height + 1; h <= n; h++ {
		b, err := c.Build(txsFor(h, 3), t0.Add(time.Duration(h)*time.Second), s)
		if err != nil {
			t.Fatalf("Build %d: %v", h, err)
		}
		applied, err := c.Apply(b)
		if err != nil || !applied {
			t.Fatalf("Apply %d: applied=%v err=%v", h, applied, err)
		}
		out = append(out, b)
	}
	return out
}
