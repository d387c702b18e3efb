package raft

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

type fsmFixture struct {
	chain  *chain.Chain
	signer *chain.Signer
	fsm    *FSM
	commit []uint64
}

func newFSMFixture(t testing.TB) *fsmFixture {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer := chain.NewSigner(key)
	c, err := chain.Open(chain.Config{Dir: t.TempDir(), ChainID: "fsm-test", Proposer: signer.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	f := &fsmFixture{chain: c, signer: signer}
	f.fsm = NewFSM(c, func(cm Committed) { f.commit = append(f.commit, cm.Block.GetHeader().GetHeight()) }, nil)
	return f
}

func (f *fsmFixture) next(t testing.TB, txs ...string) *chainpb.Block {
	t.Helper()
	var raw [][]byte
	for _, tx := range txs {
		raw = append(raw, []byte(tx))
	}
	b, err := f.chain.Build(raw, time.Now(), f.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func entry(t testing.TB, idx uint64, b *chainpb.Block) *hraft.Log {
	t.Helper()
	data, err := chain.EncodeBlockEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	return &hraft.Log{Index: idx, Type: hraft.LogCommand, Data: data}
}

func TestFSMAppliesBlocksAndReplaysIdempotently(t *testing.T) {
	f := newFSMFixture(t)
	b1 := f.next(t, "set a 1")
	if res, ok := f.fsm.Apply(entry(t, 1, b1)).(ApplyResult); !ok || res.Height != 1 || res.Replayed {
		t.Fatalf("apply block 1: %#v", f.fsm.Apply(entry(t, 1, b1)))
	}
	b2 := f.next(t, "set b 2")
	f.fsm.Apply(entry(t, 2, b2))
	// Raft replays its log after a restart: the same blocks again change nothing.
	res := f.fsm.Apply(entry(t, 1, b1)).(ApplyResult)
	if !res.Replayed {
		t.Fatalf("replay of block 1 not recognised: %+v", res)
	}
	if len(f.commit) != 2 || f.chain.Head().Height != 2 {
		t.Fatalf("commits %v, head %d", f.commit, f.chain.Head().Height)
	}
	if f.fsm.Err() != nil {
		t.Fatal(f.fsm.Err())
	}
}

func TestFSMHaltsOnInvalidEntries(t *testing.T) {
	cases := []struct {
		name string
		log  func(t *testing.T, f *fsmFixture) *hraft.Log
	}{
		{"garbage bytes", func(t *testing.T, f *fsmFixture) *hraft.Log {
			return &hraft.Log{Index: 2, Type: hraft.LogCommand, Data: []byte{0xff, 0x01, 0x02}}
		}},
		{"empty entry", func(t *testing.T, f *fsmFixture) *hraft.Log {
			return &hraft.Log{Index: 2, Type: hraft.LogCommand}
		}},
		{"height gap", func(t *testing.T, f *fsmFixture) *hraft.Log {
			b := f.next(t)
			b.Header.Height = 5
			f.signer.Sign(b)
			return entry(t, 2, b)
		}},
		{"wrong parent", func(t *testing.T, f *fsmFixture) *hraft.Log {
			b := f.next(t)
			b.Header.ParentHash = bytes.Repeat([]byte{7}, 32)
			f.signer.Sign(b)
			return entry(t, 2, b)
		}},
		{"forged signature", func(t *testing.T, f *fsmFixture) *hraft.Log {
			b := f.next(t)
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			chain.NewSigner(other).Sign(b)
			return entry(t, 2, b)
		}},
		{"tampered transactions", func(t *testing.T, f *fsmFixture) *hraft.Log {
			b := f.next(t, "set x 1")
			b.Txs[0] = []byte("set x 2")
			return entry(t, 2, b)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFSMFixture(t)
			f.fsm.Apply(entry(t, 1, f.next(t)))
			bad := tc.log(t, f)
			if err, ok := f.fsm.Apply(bad).(error); !ok || err == nil {
				t.Fatal("invalid entry was applied")
			}
			select {
			case err := <-f.fsm.Halted():
				if err == nil {
					t.Fatal("halted with a nil error")
				}
			default:
				t.Fatal("FSM did not report the halt")
			}
			// Halted means halted: a valid block after it is not applied either.
			good := f.next(t)
			if _, ok := f.fsm.Apply(entry(t, 3, good)).(error); !ok {
				t.Fatal("a halted FSM applied a later entry")
			}
			if h := f.chain.Head().Height; h != 1 {
				t.Fatalf("head moved to %d after the halt", h)
			}
			if _, err := f.fsm.Snapshot(); err == nil {
				t.Fatal("a halted FSM produced a snapshot")
			}
		})
	}
}

type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Write(p []byte) (int, error) {
	return s.Buffer.Write(p)
}

func TestFSMSnapshotRestore(t *testing.T) {
	src := newFSMFixture(t)
	for i := uint64(1); i <= 5; i++ {
		src.fsm.Apply(entry(t, i, src.next(t, "set k v")))
	}
	snap, err := src.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Blocks applied after the snapshot was taken are not in it: it is a point-in-time view.
	src.fsm.Apply(entry(t, 6, src.next(t, "set later yes")))
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil || !sink.closed {
		t.Fatalf("persist: %v (closed %v)", err, sink.closed)
	}
	snap.Release()

	// A new node with the same key restores the snapshot.
	dst := &fsmFixture{signer: src.signer}
	c, err := chain.Open(chain.Config{Dir: t.TempDir(), ChainID: "fsm-test", Proposer: src.signer.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst.chain = c
	restored := false
	dst.fsm = NewFSM(c, nil, func() { restored = true })
	if err := dst.fsm.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !restored || c.Head().Height != 5 {
		t.Fatalf("restored %v, head %d", restored, c.Head().Height)
	}
	if _, ok := c.Get([]byte("later")); ok {
		t.Fatal("snapshot holds a write made after it was taken")
	}
	if from, to, ok := c.Missing(); !ok || from != 1 || to != 4 {
		t.Fatalf("missing history after restore: %d..%d %v", from, to, ok)
	}
	// Garbage is refused, and loudly.
	if err := dst.fsm.Restore(io.NopCloser(bytes.NewReader([]byte("not a snapshot")))); err == nil {
		t.Fatal("restored from garbage")
	}
}

type failingSink struct{ memSink }

func (s *failingSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestFSMPersistCancelsOnWriteError(t *testing.T) {
	f := newFSMFixture(t)
	f.fsm.Apply(entry(t, 1, f.next(t, "set a b")))
	snap, err := f.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &failingSink{}
	if err := snap.Persist(sink); err == nil || !sink.cancelled || sink.closed {
		t.Fatalf("persist on a failing sink: err %v, cancelled %v, closed %v", err, sink.cancelled, sink.closed)
	}
}

func BenchmarkFSMApply(b *testing.B) {
	for _, txs := range []int{1, 100, 1000} {
		b.Run(strconv.Itoa(txs)+"tx", func(b *testing.B) {
			f := newFSMFixture(b)
			payload := make([]string, txs)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := range payload {
					payload[j] = "set k" + strconv.Itoa(j) + " " + strconv.Itoa(i) + "-" + string(bytes.Repeat([]byte{'x'}, 80))
				}
				blk := f.next(b, payload...)
				e := entry(b, uint64(i+1), blk)
				b.StartTimer()
				if err, ok := f.fsm.Apply(e).(error); ok {
					b.Fatal(err)
				}
			}
		})
	}
}
