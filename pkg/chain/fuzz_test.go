package chain

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

// fuzzSigner has a fixed key, so that a saved crasher holding a signed block still verifies when it
// is replayed from testdata/fuzz.
func fuzzSigner() *Signer {
	return NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x5e}, ed25519.SeedSize)))
}

// FuzzUnmarshalBlock: arbitrary bytes never panic UnmarshalBlock; whatever decodes has a header,
// re-marshals and decodes to an equal block, and hashing, signature checks and validation against a
// chain answer with an error instead of panicking.
func FuzzUnmarshalBlock(f *testing.F) {
	s := fuzzSigner()
	c, err := Open(Config{Dir: f.TempDir(), ChainID: testChainID, Proposer: s.PublicKey()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.Close() })
	b, err := c.Build(txsFor(1, 3), t0, s)
	if err != nil {
		f.Fatal(err)
	}
	valid, err := MarshalBlock(b)
	if err != nil {
		f.Fatal(err)
	}
	validHash := BlockHash(b)
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	f.Add(valid[:len(valid)/2])
	f.Add(append(append([]byte(nil), valid...), 0x12, 0x00)) // an extra empty tx
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := UnmarshalBlock(data)
		if err != nil {
			return
		}
		if b.Header == nil {
			t.Fatal("UnmarshalBlock returned a block without header and no error")
		}
		again, err := MarshalBlock(b)
		if err != nil {
			// Only an invalid UTF-8 chain_id cannot be encoded again; it must also be unhashable.
			if HeaderHash(b.Header) != nil {
				t.Fatalf("re-marshal failed (%v) but the header hashes", err)
			}
			return
		}
		b2, err := UnmarshalBlock(again)
		if err != nil || !proto.Equal(b, b2) {
			t.Fatalf("re-decode: %v", err)
		}
		_ = BlockHash(b)
		_ = VerifyBlockSignature(b, s.PublicKey())
		// Validate never changes the chain; it may accept only the one block we built.
		if err := c.Validate(b); err == nil && !bytes.Equal(BlockHash(b), validHash) {
			t.Fatalf("Validate accepted a block that is not the signed block 1: %v", b)
		}
		if err := c.checkHistorical(b); err == nil {
			if VerifyBlockSignature(b, s.PublicKey()) != nil {
				t.Fatal("checkHistorical accepted a block whose signature does not verify")
			}
		}
	})
}

// FuzzRestore feeds arbitrary bytes to Chain.Restore. The first byte chooses how: odd appends the
// correct sha256 trailer, so that mutations get past the checksum and reach the header and state
// entry parsing, even sends the bytes as they are. Restore must never panic or hang, must leave the
// chain unchanged when it fails, and what it accepts must be a verifiable head.
func FuzzRestore(f *testing.F) {
	s := fuzzSigner()
	src, err := Open(Config{Dir: f.TempDir(), ChainID: testChainID, Proposer: s.PublicKey()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = src.Close() })
	var snaps [][]byte
	for h := uint64(1); h <= 3; h++ {
		b, err := src.Build(txsFor(h, 2), t0.Add(time.Duration(h)*time.Second), s)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := src.Apply(b); err != nil {
			f.Fatal(err)
		}
		snap, _ := src.Snapshot()
		var buf bytes.Buffer
		if _, err := snap.WriteTo(&buf); err != nil {
			f.Fatal(err)
		}
		snaps = append(snaps, buf.Bytes())
	}
	empty, err := Open(Config{Dir: f.TempDir(), ChainID: testChainID, Proposer: s.PublicKey()})
	if err != nil {
		f.Fatal(err)
	}
	emptySnap, _ := empty.Snapshot()
	var eb bytes.Buffer
	if _, err := emptySnap.WriteTo(&eb); err != nil {
		f.Fatal(err)
	}
	_ = empty.Close()
	snaps = append(snaps, eb.Bytes())
	for _, sn := range snaps {
		f.Add(append([]byte{0}, sn...))                                                                    // as is
		f.Add(append([]byte{1}, sn[:len(sn)-sha256.Size]...))                                              // body; the target appends the trailer
		f.Add(append([]byte{0}, sn[:len(sn)/2]...))                                                        // truncated
		f.Add(append([]byte{1}, sn[:len(snapshotMagic)+4]...))                                             // magic and version only
		f.Add(append(append([]byte{0}, sn...), 0x00))                                                      // trailing byte
		f.Add(append([]byte{1}, binary.AppendUvarint([]byte(snapshotMagic+"\x00\x00\x00\x01"), 1<<40)...)) // huge header length
	}

	// Chains live under the F's temp dir: a T's temp dir would vanish after each input.
	base := f.TempDir()
	var dst *Chain
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		// One chain per worker process, reopened fresh only after a restore changed it, so most
		// inputs run against the same empty chain without paying for a new bbolt file.
		if dst == nil {
			dir, err := os.MkdirTemp(base, "dst-")
			if err != nil {
				t.Fatal(err)
			}
			dst, err = Open(Config{Dir: dir, ChainID: testChainID, Proposer: s.PublicKey()})
			if err != nil {
				t.Fatal(err)
			}
		}
		stream := data[1:]
		if data[0]&1 == 1 {
			sum := sha256.Sum256(stream)
			stream = append(append([]byte(nil), stream...), sum[:]...)
		}
		before := dst.Head()
		err := dst.Restore(bytes.NewReader(stream))
		after := dst.Head()
		if err != nil {
			if before.Height != after.Height || !bytes.Equal(before.Hash, after.Hash) {
				t.Fatalf("failed restore (%v) moved the head from %d to %d", err, before.Height, after.Height)
			}
			if errors.Is(err, ErrClosed) {
				t.Fatal("chain closed under the fuzzer")
			}
			return
		}
		if after.Height > 0 {
			head, err := dst.Block(after.Height)
			if err != nil {
				t.Fatalf("restored head %d cannot be read: %v", after.Height, err)
			}
			if err := VerifyBlockSignature(head, s.PublicKey()); err != nil {
				t.Fatalf("restore accepted a head whose signature fails: %v", err)
			}
			// The restored state must stream out again in the same format.
			snap, _ := dst.Snapshot()
			if _, err := snap.WriteTo(new(bytes.Buffer)); err != nil {
				t.Fatalf("snapshot of a restored chain: %v", err)
			}
		}
		if after.Height != before.Height {
			_ = dst.Close()
			dst = nil
		}
	})
}

// FuzzRaftEntry: arbitrary bytes never panic DecodeEntry; what decodes is a block with a header
// whose re-encoding decodes to an equal block with the same hash. Only the block is compared: an
// entry's own unknown fields (from a newer version) are not carried by EncodeBlockEntry, by design.
func FuzzRaftEntry(f *testing.F) {
	s := fuzzSigner()
	b := &chainpb.Block{Header: &chainpb.Header{ChainId: testChainID, Height: 3, ParentHash: bytes.Repeat([]byte{1}, 32), TimeUnixNano: t0.UnixNano()}, Txs: txsFor(3, 2)}
	b.Header.TxRoot = TxRoot(b.Txs)
	s.Sign(b)
	valid, err := EncodeBlockEntry(b)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Add(append(append([]byte(nil), valid...), 0x30, 0x30)) // an unknown entry field after the block
	f.Add(valid[:len(valid)-3])
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if err != nil {
			return
		}
		blk := e.GetBlock()
		if blk == nil || blk.Header == nil {
			t.Fatal("decoded an entry without a block header and no error")
		}
		again, err := EncodeBlockEntry(blk)
		if err != nil {
			if HeaderHash(blk.Header) != nil {
				t.Fatalf("re-encode failed (%v) but the header hashes", err)
			}
			return
		}
		e2, err := DecodeEntry(again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !proto.Equal(blk, e2.GetBlock()) || !bytes.Equal(BlockHash(blk), BlockHash(e2.GetBlock())) {
			t.Fatal("the block changed through an entry round trip")
		}
		_ = VerifyBlockSignature(blk, s.PublicKey())
	})
}
