package raft

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/seqops/sequencer-operator/pkg/chain"
)

// fuzzKey is fixed so that saved crashers holding signed blocks replay the same way.
var fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x7a}, ed25519.SeedSize))

var fuzzT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fuzzChain opens a chain under dir holding two blocks, so that entries can replay a stored block,
// extend the head or skip ahead. It returns the chain and the encoded entries of blocks 1..4 (3 and
// 4 are built on a throwaway copy, so they are the valid next block and one past it).
func fuzzChain(tb testing.TB, dir string) (*chain.Chain, [][]byte) {
	tb.Helper()
	signer := chain.NewSigner(fuzzKey)
	open := func(d string) *chain.Chain {
		c, err := chain.Open(chain.Config{Dir: d, ChainID: "fsm-fuzz", Proposer: signer.PublicKey()})
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
	grow := func(c *chain.Chain, n int) [][]byte {
		var out [][]byte
		for h := c.Head().Height + 1; h <= uint64(n); h++ {
			b, err := c.Build([][]byte{[]byte("set k" + string(rune('0'+h)) + " v"), []byte("note")}, fuzzT0.Add(time.Duration(h)*time.Second), signer)
			if err != nil {
				tb.Fatal(err)
			}
			if _, err := c.Apply(b); err != nil {
				tb.Fatal(err)
			}
			data, err := chain.EncodeBlockEntry(b)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, data)
		}
		return out
	}
	scratchDir, err := os.MkdirTemp(dir, "scratch-")
	if err != nil {
		tb.Fatal(err)
	}
	scratch := open(scratchDir)
	entries := grow(scratch, 4)
	_ = scratch.Close()
	_ = os.RemoveAll(scratchDir)
	mainDir, err := os.MkdirTemp(dir, "chain-")
	if err != nil {
		tb.Fatal(err)
	}
	c := open(mainDir)
	grow(c, 2)
	return c, entries
}

// FuzzFSMApply applies an arbitrary Raft log entry to an FSM over a chain at height 2. It must never
// panic; it answers either an ApplyResult whose height is the chain's head (or a replayed block
// below it) or an error that halts the FSM and leaves the chain unchanged. Non-command log types
// are ignored.
func FuzzFSMApply(f *testing.F) {
	base := f.TempDir()
	_, entries := fuzzChain(f, base)
	for _, e := range entries {
		f.Add(e, uint8(hraft.LogCommand))
	}
	third := entries[2]
	f.Add(third, uint8(hraft.LogNoop))
	f.Add(third, uint8(hraft.LogConfiguration))
	f.Add([]byte{}, uint8(hraft.LogCommand))
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00}, uint8(hraft.LogCommand))
	f.Add(third[:len(third)-1], uint8(hraft.LogCommand))
	if e, err := chain.DecodeEntry(third); err == nil {
		// Tampered transactions: the header is signed, the txs are only bound by tx_root.
		b := e.GetBlock()
		b.Txs = append(b.Txs, []byte("set extra 1"))
		if data, err := chain.EncodeBlockEntry(b); err == nil {
			f.Add(data, uint8(hraft.LogCommand))
		}
	}

	var c *chain.Chain
	f.Fuzz(func(t *testing.T, data []byte, logType uint8) {
		if c == nil {
			// A fresh chain only after an entry changed it, so most inputs reuse one bbolt file.
			c, _ = fuzzChain(t, base)
		}
		committed := 0
		fsm := NewFSM(c, func(Committed) { committed++ }, nil)
		before := c.Head()
		res := fsm.Apply(&hraft.Log{Index: 3, Term: 1, Type: hraft.LogType(logType), Data: data})
		after := c.Head()
		switch r := res.(type) {
		case nil:
			if hraft.LogType(logType) == hraft.LogCommand {
				t.Fatal("a command entry got no result")
			}
			if after.Height != before.Height {
				t.Fatal("a non-command entry moved the head")
			}
		case error:
			if fsm.Err() == nil {
				t.Fatalf("Apply answered %v without halting the FSM", r)
			}
			if after.Height != before.Height || !bytes.Equal(after.Hash, before.Hash) {
				t.Fatalf("a rejected entry moved the head from %d to %d", before.Height, after.Height)
			}
			if committed != 0 {
				t.Fatal("a rejected entry was reported committed")
			}
		case ApplyResult:
			if fsm.Err() != nil {
				t.Fatalf("applied but halted: %v", fsm.Err())
			}
			switch {
			case r.Replayed && (after.Height != before.Height || r.Height > before.Height || committed != 0):
				t.Fatalf("replay of %d moved the head %d→%d or committed %d", r.Height, before.Height, after.Height, committed)
			case !r.Replayed && (r.Height != before.Height+1 || after.Height != r.Height || committed != 1):
				t.Fatalf("applied block %d on head %d, head now %d, committed %d", r.Height, before.Height, after.Height, committed)
			}
			if !r.Replayed {
				blk, err := c.Block(after.Height)
				if err != nil || chain.VerifyBlockSignature(blk, chain.NewSigner(fuzzKey).PublicKey()) != nil {
					t.Fatalf("applied block %d does not verify: %v", after.Height, err)
				}
				_ = c.Close()
				c = nil
			}
		default:
			t.Fatalf("Apply answered %T", res)
		}
	})
}
