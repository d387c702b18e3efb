package chain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

// jsonHeader and jsonBlock are the plain-struct equivalent of a block, as a
// JSON Raft log would carry it (the encoding this design replaces).
type jsonHeader struct {
	ChainID      string `json:"chainId"`
	Height       uint64 `json:"height"`
	ParentHash   []byte `json:"parentHash"`
	TimeUnixNano int64  `json:"timeUnixNano"`
	TxRoot       []byte `json:"txRoot"`
	StateRoot    []byte `json:"stateRoot"`
	Proposer     []byte `json:"proposer"`
}

type jsonBlock struct {
	Header    jsonHeader `json:"header"`
	Txs       [][]byte   `json:"txs"`
	Signature []byte     `json:"signature"`
}

// benchBlock is a signed block of 1,000 transactions of 100 bytes.
func benchBlock(b *testing.B) (*chainpb.Block, *jsonBlock) {
	b.Helper()
	txs := make([][]byte, 1000)
	for i := range txs {
		txs[i] = []byte(fmt.Sprintf("set key%06d %s", i, bytes.Repeat([]byte{'v'}, 100-len("set key000000 "))))
	}
	blk := &chainpb.Block{
		Header: &chainpb.Header{
			ChainId: "bench", Height: 12345, ParentHash: bytes.Repeat([]byte{1}, 32),
			TimeUnixNano: time.Now().UnixNano(), TxRoot: TxRoot(txs), StateRoot: bytes.Repeat([]byte{2}, 32),
		},
		Txs: txs,
	}
	newSigner(b).Sign(blk)
	h := blk.Header
	return blk, &jsonBlock{
		Header: jsonHeader{h.ChainId, h.Height, h.ParentHash, h.TimeUnixNano, h.TxRoot, h.StateRoot, h.Proposer},
		Txs:    blk.Txs, Signature: blk.Signature,
	}
}

func BenchmarkEncodeBlockProto(b *testing.B) {
	blk, _ := benchBlock(b)
	b.ReportAllocs()
	for b.Loop() {
		data, err := EncodeBlockEntry(blk)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
	}
}

func BenchmarkEncodeBlockJSON(b *testing.B) {
	_, jb := benchBlock(b)
	b.ReportAllocs()
	for b.Loop() {
		data, err := json.Marshal(jb)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
	}
}

func BenchmarkDecodeBlockProto(b *testing.B) {
	blk, _ := benchBlock(b)
	data, _ := EncodeBlockEntry(blk)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEntry(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBlockJSON(b *testing.B) {
	_, jb := benchBlock(b)
	data, _ := json.Marshal(jb)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var out jsonBlock
		if err := json.Unmarshal(data, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChainApply applies 1,000-tx blocks with fsync on; building each
// block (execution and signing by the producer) is not timed.
func BenchmarkChainApply(b *testing.B) {
	s := newSigner(b)
	c := openChain(b, b.TempDir(), s)
	now := time.Now()
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		txs := make([][]byte, 1000)
		for j := range txs {
			n++
			txs[j] = []byte(fmt.Sprintf("set key%09d %s", n, bytes.Repeat([]byte{'v'}, 100-len("set key000000000 "))))
		}
		blk, err := c.Build(txs, now.Add(time.Duration(i)*time.Millisecond), s)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if applied, err := c.Apply(blk); !applied || err != nil {
			b.Fatalf("Apply: %v, %v", applied, err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "tx/s")
}
