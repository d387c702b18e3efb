package chain

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

func snapshotBytes(t *testing.T, c *Chain) []byte {
	t.Helper()
	snap, err := c.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v (buffer %d)", n, err, buf.Len())
	}
	return buf.Bytes()
}

func TestSnapshotRestoreBackfill(t *testing.T) {
	s := newSigner(t)
	src := openChain(t, t.TempDir(), s)
	blocks := grow(t, src, s, 10)

	// The snapshot is point-in-time: blocks applied after taking it are not
	// in it.
	snap, _ := src.Snapshot()
	grow(t, src, s, 11)
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	want := blocks[9]

	dir := t.TempDir()
	dst := openChain(t, dir, s)
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if h := dst.Head(); h.Height != 10 || !bytes.Equal(h.Hash, BlockHash(want)) || !bytes.Equal(h.StateRoot, want.Header.StateRoot) {
		t.Fatalf("restored head = %+v", h)
	}
	for _, b := range blocks {
		for _, tx := range b.Txs {
			k, v, _ := parseSet(tx)
			if got, ok := dst.Get(k); !ok || !bytes.Equal(got, v) {
				t.Fatalf("restored %s = %q, %v, want %q", k, got, ok, v)
			}
		}
	}
	if _, ok := dst.Get([]byte("k11-0")); ok {
		t.Fatal("state from after the snapshot leaked into it")
	}
	if from, to, ok := dst.Missing(); !ok || from != 1 || to != 9 {
		t.Fatalf("Missing = %d, %d, %v, want 1, 9, true", from, to, ok)
	}

	// The restored chain continues with the source's next block.
	if applied, err := dst.Apply(mustBlock(t, src, 11)); !applied || err != nil {
		t.Fatalf("Apply 11 after restore: %v, %v", applied, err)
	}

	// Gaps survive a restart.
	dst.Close()
	dst = openChain(t, dir, s)
	if from, to, ok := dst.Missing(); !ok || from != 1 || to != 9 {
		t.Fatalf("Missing after reopen = %d, %d, %v", from, to, ok)
	}

	// A validly signed block from another history.
	fork := openChain(t, t.TempDir(), s)
	fb1, _ := fork.Build([][]byte{[]byte("set fork 1")}, t0, s)
	if _, err := fork.Apply(fb1); err != nil {
		t.Fatal(err)
	}
	forkBlocks := append([]*chainpb.Block{fb1}, grow(t, fork, s, 9)...)

	badSig := roundTrip(t, blocks[8])
	badSig.Signature[0] ^= 1
	otherSigner := roundTrip(t, blocks[8])
	newSigner(t).Sign(otherSigner)
	badTxs := roundTrip(t, blocks[8])
	badTxs.Txs = badTxs.Txs[1:]

	tests := []struct {
		name  string
		block *chainpb.Block
		field string
	}{
		{"not the top of the gap", blocks[4], ""},
		{"block from another history", forkBlocks[8], "hash"},
		{"bad signature", badSig, "signature"},
		{"untrusted proposer", otherSigner, "proposer"},
		{"txs do not match tx root", badTxs, "tx_root"},
		{"no header", &chainpb.Block{}, "header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := dst.Backfill(tt.block)
			if err == nil {
				t.Fatal("Backfill accepted a wrong block")
			}
			var verr *ValidationError
			if tt.field != "" && (!errors.As(err, &verr) || verr.Field != tt.field) {
				t.Fatalf("Backfill = %v, want field %s", err, tt.field)
			}
			if _, to, _ := dst.Missing(); to != 9 {
				t.Fatalf("gap changed to ..%d", to)
			}
		})
	}

	for h := 9; h >= 1; h-- {
		if err := dst.Backfill(blocks[h-1]); err != nil {
			t.Fatalf("Backfill %d: %v", h, err)
		}
	}
	if _, _, ok := dst.Missing(); ok {
		t.Fatal("gap remains after backfilling everything")
	}
	for h := uint64(1); h <= 11; h++ {
		if got, err := dst.Block(h); err != nil || !bytes.Equal(BlockHash(got), BlockHash(mustBlock(t, src, h))) {
			t.Fatalf("Block(%d) after backfill: %v", h, err)
		}
	}
	if h, ok := dst.TxHeight(TxHash(blocks[2].Txs[0])); !ok || h != 3 {
		t.Fatalf("TxHeight of a backfilled tx = %d, %v", h, ok)
	}
	if err := dst.Backfill(blocks[3]); err != nil {
		t.Fatalf("Backfill of a stored identical block: %v", err)
	}
	if err := dst.Backfill(forkBlocks[3]); err == nil {
		t.Fatal("Backfill of a conflicting block over a stored one succeeded")
	}
}

func mustBlock(t *testing.T, c *Chain, h uint64) *chainpb.Block {
	t.Helper()
	b, err := c.Block(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRestoreOverStoredHistory: a member that has old blocks restores a newer
// snapshot; its old blocks are kept and checked when the gap closes.
func TestRestoreOverStoredHistory(t *testing.T) {
	s := newSigner(t)
	src := openChain(t, t.TempDir(), s)
	blocks := grow(t, src, s, 10)
	data := snapshotBytes(t, src)

	// Another history for heights 1..3, validly signed.
	forked := openChain(t, t.TempDir(), s)
	b1, _ := forked.Build([][]byte{[]byte("set fork 1")}, t0, s)
	if _, err := forked.Apply(b1); err != nil {
		t.Fatal(err)
	}
	grow(t, forked, s, 3)

	tests := []struct {
		name    string
		prefix  []*chainpb.Block // stored before the restore
		wantErr bool             // closing the gap must detect a fork
	}{
		{"same history", blocks[:3], false},
		{"forked history", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openChain(t, t.TempDir(), s)
			prefix := tt.prefix
			if prefix == nil {
				for h := uint64(1); h <= 3; h++ {
					prefix = append(prefix, mustBlock(t, forked, h))
				}
			}
			for _, b := range prefix {
				if _, err := c.Apply(b); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Restore(bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if from, to, ok := c.Missing(); !ok || from != 4 || to != 9 {
				t.Fatalf("Missing = %d, %d, %v, want 4..9", from, to, ok)
			}
			var err error
			for h := 9; h >= 4 && err == nil; h-- {
				err = c.Backfill(blocks[h-1])
			}
			var ferr *ForkError
			if tt.wantErr != errors.As(err, &ferr) {
				t.Fatalf("closing the gap: %v, want fork %v", err, tt.wantErr)
			}
		})
	}
}

func TestRestoreIsNoOpWhenAlreadyPast(t *testing.T) {
	s := newSigner(t)
	c := openChain(t, t.TempDir(), s)
	blocks := grow(t, c, s, 3)
	data := snapshotBytes(t, c)
	grow(t, c, s, 5)
	before := c.Head()
	// Raft restores its latest snapshot on restart while the store is ahead.
	if err := c.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if after := c.Head(); after.Height != before.Height || !bytes.Equal(after.Hash, before.Hash) {
		t.Fatalf("head moved from %d to %d", before.Height, after.Height)
	}
	if v, ok := c.Get([]byte("k5-0")); !ok || len(v) == 0 {
		t.Fatal("state rolled back")
	}
	for _, b := range blocks { // and the log replay that follows is idempotent
		if applied, err := c.Apply(b); applied || err != nil {
			t.Fatalf("replay: %v, %v", applied, err)
		}
	}
	// A snapshot from another history at a stored height is a fork.
	other := openChain(t, t.TempDir(), s)
	b, _ := other.Build([][]byte{[]byte("set x y")}, t0, s)
	other.Apply(b)
	var ferr *ForkError
	if err := c.Restore(bytes.NewReader(snapshotBytes(t, other))); !errors.As(err, &ferr) {
		t.Fatalf("Restore of a conflicting snapshot = %v, want *ForkError", err)
	}
}

func TestRestoreRejectsBadStreams(t *testing.T) {
	s := newSigner(t)
	src := openChain(t, t.TempDir(), s)
	grow(t, src, s, 3)
	good := snapshotBytes(t, src)
	otherChain, _ := Open(Config{Dir: t.TempDir(), ChainID: "other", Proposer: s.PublicKey()})
	defer otherChain.Close()
	ob, _ := otherChain.Build(nil, time.Now(), s)
	otherChain.Apply(ob)
	untrusted := openChain(t, t.TempDir(), newSigner(t))

	flip := func(i int) []byte { d := bytes.Clone(good); d[i] ^= 1; return d }
	tests := []struct {
		name string
		data []byte
		into *Chain
	}{
		{"empty", nil, nil},
		{"bad magic", flip(0), nil},
		{"bad version", flip(11), nil},
		{"flipped byte in header", flip(20), nil},
		{"flipped byte in state", flip(len(good) - 40), nil},
		{"flipped checksum", flip(len(good) - 1), nil},
		{"truncated", good[:len(good)-1], nil},
		{"truncated mid state", good[:len(good)/2], nil},
		{"trailing data", append(bytes.Clone(good), 0), nil},
		{"other chain", snapshotBytes(t, otherChain), nil},
		{"untrusted proposer", good, untrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.into
			if c == nil {
				c = openChain(t, t.TempDir(), s)
			}
			if err := c.Restore(bytes.NewReader(tt.data)); err == nil {
				t.Fatal("Restore accepted a bad snapshot")
			}
			if h := c.Head(); h.Height != 0 {
				t.Fatalf("head changed to %d", h.Height)
			}
		})
	}
	// An empty chain's snapshot restores to an empty chain.
	empty := openChain(t, t.TempDir(), s)
	fresh := openChain(t, t.TempDir(), s)
	if err := fresh.Restore(bytes.NewReader(snapshotBytes(t, empty))); err != nil || fresh.Head().Height != 0 {
		t.Fatalf("restore of an empty snapshot: %v", err)
	}
}
