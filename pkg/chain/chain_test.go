package chain

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

// TestValidate is the FSM's view: each bad field is rejected with that Field,
// and Apply of a rejected block changes nothing.
func TestValidate(t *testing.T) {
	s := newSigner(t)
	other := newSigner(t)
	c := openChain(t, t.TempDir(), s)
	grow(t, c, s, 2)
	head := c.Head()

	good := func(t *testing.T) *chainpb.Block {
		b, err := c.Build(txsFor(3, 4), head.Time.Add(time.Second), s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	resign := func(b *chainpb.Block) { s.Sign(b) }

	tests := []struct {
		name   string
		mutate func(b *chainpb.Block) *chainpb.Block
		field  string // "" means valid
	}{
		{"valid", func(b *chainpb.Block) *chainpb.Block { return b }, ""},
		{"no header", func(b *chainpb.Block) *chainpb.Block { b.Header = nil; return b }, "header"},
		{"nil block", func(b *chainpb.Block) *chainpb.Block { return nil }, "header"},
		{"chain id", func(b *chainpb.Block) *chainpb.Block { b.Header.ChainId = "other"; resign(b); return b }, "chain_id"},
		{"height skips", func(b *chainpb.Block) *chainpb.Block { b.Header.Height++; resign(b); return b }, "height"},
		{"height repeats head", func(b *chainpb.Block) *chainpb.Block { b.Header.Height--; resign(b); return b }, "height"},
		{"height zero", func(b *chainpb.Block) *chainpb.Block { b.Header.Height = 0; resign(b); return b }, "height"},
		{"parent hash", func(b *chainpb.Block) *chainpb.Block { b.Header.ParentHash[0] ^= 1; resign(b); return b }, "parent_hash"},
		{"parent hash empty", func(b *chainpb.Block) *chainpb.Block { b.Header.ParentHash = nil; resign(b); return b }, "parent_hash"},
		{"time equal to head", func(b *chainpb.Block) *chainpb.Block {
			b.Header.TimeUnixNano = head.Time.UnixNano()
			resign(b)
			return b
		}, "time_unix_nano"},
		{"time before head", func(b *chainpb.Block) *chainpb.Block {
			b.Header.TimeUnixNano = head.Time.UnixNano() - 1
			resign(b)
			return b
		}, "time_unix_nano"},
		{"proposer", func(b *chainpb.Block) *chainpb.Block { other.Sign(b); return b }, "proposer"},
		{"signature flipped", func(b *chainpb.Block) *chainpb.Block { b.Signature[5] ^= 1; return b }, "signature"},
		{"signature missing", func(b *chainpb.Block) *chainpb.Block { b.Signature = nil; return b }, "signature"},
		{"header changed after signing", func(b *chainpb.Block) *chainpb.Block { b.Header.TxRoot = make([]byte, 32); return b }, "signature"},
		{"tx root", func(b *chainpb.Block) *chainpb.Block { b.Txs[1] = []byte("set x y"); return b }, "tx_root"},
		{"tx dropped", func(b *chainpb.Block) *chainpb.Block { b.Txs = b.Txs[:3]; return b }, "tx_root"},
		{"empty tx", func(b *chainpb.Block) *chainpb.Block {
			b.Txs[0] = nil
			b.Header.TxRoot = TxRoot(b.Txs)
			resign(b)
			return b
		}, "txs"},
		{"state root", func(b *chainpb.Block) *chainpb.Block { b.Header.StateRoot[0] ^= 1; resign(b); return b }, "state_root"},
		{"txs reordered", func(b *chainpb.Block) *chainpb.Block {
			// Reordering keeps the signature valid if roots are recomputed
			// for the new order, except the state root, which re-execution
			// must catch.
			b.Txs[0], b.Txs[1] = b.Txs[1], b.Txs[0]
			b.Header.TxRoot = TxRoot(b.Txs)
			resign(b)
			return b
		}, "state_root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mutate(good(t))
			err := c.Validate(b)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate(valid block) = %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate = %v, want *ValidationError for %s", err, tt.field)
			}
			if verr.Field != tt.field {
				t.Fatalf("Validate field = %q (%v), want %q", verr.Field, verr, tt.field)
			}
			applied, err := c.Apply(b)
			// Apply sees a different block at a stored height as a fork, not
			// as a validation failure.
			var ferr *ForkError
			if h := b.GetHeader().GetHeight(); h >= 1 && h <= head.Height {
				if applied || !errors.As(err, &ferr) {
					t.Fatalf("Apply = (%v, %v), want *ForkError", applied, err)
				}
			} else if applied || !errors.As(err, &verr) || verr.Field != tt.field {
				t.Fatalf("Apply = (%v, %v), want field %s", applied, err, tt.field)
			}
			if got := c.Head(); got.Height != head.Height || !bytes.Equal(got.Hash, head.Hash) {
				t.Fatalf("head changed after rejected block: %+v", got)
			}
		})
	}
}

func TestFirstBlock(t *testing.T) {
	s := newSigner(t)
	c := openChain(t, t.TempDir(), s)
	if h := c.Head(); h.Height != 0 || h.Hash != nil || !h.Time.IsZero() {
		t.Fatalf("empty chain head = %+v, want zero", h)
	}
	b, err := c.Build(nil, t0, s)
	if err != nil {
		t.Fatal(err)
	}
	if b.Header.Height != 1 || len(b.Header.ParentHash) != 0 {
		t.Fatalf("first block height %d parent %x, want 1 and empty", b.Header.Height, b.Header.ParentHash)
	}
	if _, err := c.Apply(b); err != nil {
		t.Fatal(err)
	}
	// A clock that steps back still gives a strictly later time.
	b2, err := c.Build(nil, t0.Add(-time.Hour), s)
	if err != nil {
		t.Fatal(err)
	}
	if b2.Header.TimeUnixNano != b.Header.TimeUnixNano+1 {
		t.Fatalf("time after clock step back = %d, want %d", b2.Header.TimeUnixNano, b.Header.TimeUnixNano+1)
	}
	if _, err := c.Apply(b2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Build(nil, t0, newSigner(t)); err == nil {
		t.Fatal("Build with an untrusted signer succeeded")
	}
}

func TestApplyReplayAndFork(t *testing.T) {
	s := newSigner(t)
	c := openChain(t, t.TempDir(), s)
	blocks := grow(t, c, s, 3)

	// A competing block 2 on the same parent, validly signed.
	fork := openChain(t, t.TempDir(), s)
	if _, err := fork.Apply(blocks[0]); err != nil {
		t.Fatal(err)
	}
	alt, err := fork.Build([][]byte{[]byte("set other value")}, t0.Add(90*time.Second), s)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		block   *chainpb.Block
		applied bool
		fork    bool
	}{
		{"replay of block 1", blocks[0], false, false},
		{"replay of block 2 decoded again", roundTrip(t, blocks[1]), false, false},
		{"replay of head", blocks[2], false, false},
		{"different block 2", alt, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := c.Head()
			applied, err := c.Apply(tt.block)
			var ferr *ForkError
			if tt.fork {
				if !errors.As(err, &ferr) || ferr.Height != tt.block.Header.Height {
					t.Fatalf("Apply = (%v, %v), want *ForkError at %d", applied, err, tt.block.Header.Height)
				}
			} else if err != nil {
				t.Fatalf("Apply = %v", err)
			}
			if applied != tt.applied {
				t.Fatalf("applied = %v, want %v", applied, tt.applied)
			}
			if after := c.Head(); !bytes.Equal(after.Hash, before.Hash) {
				t.Fatal("head changed")
			}
		})
	}
}

func roundTrip(t testing.TB, b *chainpb.Block) *chainpb.Block {
	t.Helper()
	data, err := MarshalBlock(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := UnmarshalBlock(data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReadsAndIndex(t *testing.T) {
	s := newSigner(t)
	c := openChain(t, t.TempDir(), s)
	blocks := grow(t, c, s, 4)
	for i, b := range blocks {
		got, err := c.Block(uint64(i + 1))
		if err != nil || !proto.Equal(got, b) {
			t.Fatalf("Block(%d) = %v, %v", i+1, got, err)
		}
		for _, tx := range b.Txs {
			if h, ok := c.TxHeight(TxHash(tx)); !ok || h != uint64(i+1) {
				t.Fatalf("TxHeight = %d, %v, want %d", h, ok, i+1)
			}
		}
	}
	if _, err := c.Block(5); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Block(5) err = %v, want ErrNotFound", err)
	}
	if _, ok := c.TxHeight(TxHash([]byte("nope"))); ok {
		t.Fatal("TxHeight of unknown tx found")
	}
	if v, ok := c.Get([]byte("k3-1")); !ok || string(v) != "v1 at height 3" {
		t.Fatalf("Get = %q, %v", v, ok)
	}
	// Mutating returned values must not change the chain.
	head, _ := c.Block(4)
	head.Header.Height = 99
	if again, _ := c.Block(4); again.Header.Height != 4 {
		t.Fatal("Block returned shared memory")
	}
}

// TestConcurrentReads runs readers against a writer; meaningful under -race.
func TestConcurrentReads(t *testing.T) {
	s := newSigner(t)
	c := openChain(t, t.TempDir(), s)
	grow(t, c, s, 1)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				h := c.Head()
				if _, err := c.Block(h.Height); err != nil {
					t.Errorf("Block(head %d): %v", h.Height, err)
					return
				}
				c.Get([]byte("k1-0"))
				c.TxHeight(TxHash(txsFor(1, 1)[0]))
				snap, _ := c.Snapshot()
				var buf bytes.Buffer
				if _, err := snap.WriteTo(&buf); err != nil {
					t.Errorf("WriteTo: %v", err)
					return
				}
			}
		}()
	}
	grow(t, c, s, 20)
	close(stop)
	wg.Wait()
}

func TestUncommittedDropsIncludedTransactions(t *testing.T) {
	s := newSigner(t)
	c := openChain(t, t.TempDir(), s)
	blocks := grow(t, c, s, 3)
	fresh := []byte("set fresh 1")
	in := [][]byte{blocks[0].Txs[0], fresh, blocks[2].Txs[1]}
	got := c.Uncommitted(in)
	if len(got) != 1 || string(got[0]) != string(fresh) {
		t.Fatalf("Uncommitted = %q, want only %q", got, fresh)
	}
	if err := c.index.flush(); err != nil { // from disk as well as from memory
		t.Fatal(err)
	}
	if got := c.Uncommitted(in); len(got) != 1 {
		t.Fatalf("after flush: %q", got)
	}
}
