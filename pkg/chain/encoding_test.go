package chain

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

func sampleBlock(t testing.TB) *chainpb.Block {
	t.Helper()
	s := newSigner(t)
	b := &chainpb.Block{
		Header: &chainpb.Header{
			ChainId:      testChainID,
			Height:       7,
			ParentHash:   bytes.Repeat([]byte{1}, 32),
			TimeUnixNano: t0.UnixNano(),
			StateRoot:    bytes.Repeat([]byte{2}, 32),
		},
		Txs: [][]byte{[]byte("set a 1"), []byte("hello"), {0, 1, 2}},
	}
	b.Header.TxRoot = TxRoot(b.Txs)
	s.Sign(b)
	return b
}

func TestEncodingRoundTrip(t *testing.T) {
	b := sampleBlock(t)
	tests := []struct {
		name  string
		block *chainpb.Block
	}{
		{"full block", b},
		{"header only", &chainpb.Block{Header: &chainpb.Header{Height: 1}}},
		{"empty header", &chainpb.Block{Header: &chainpb.Header{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entry, err := EncodeBlockEntry(tt.block)
			if err != nil {
				t.Fatal(err)
			}
			e, err := DecodeEntry(entry)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if !proto.Equal(e.GetBlock(), tt.block) {
				t.Fatal("entry round trip changed the block")
			}
			if !bytes.Equal(BlockHash(e.GetBlock()), BlockHash(tt.block)) {
				t.Fatal("entry round trip changed the block hash")
			}
			data, err := MarshalBlock(tt.block)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnmarshalBlock(data)
			if err != nil || !proto.Equal(got, tt.block) {
				t.Fatalf("block round trip: %v", err)
			}
		})
	}
	if err := VerifyBlockSignature(roundTrip(t, b), b.Header.Proposer); err != nil {
		t.Fatalf("signature after round trip: %v", err)
	}
}

func TestEncodeRejectsHeaderless(t *testing.T) {
	for _, b := range []*chainpb.Block{nil, {}} {
		if _, err := EncodeBlockEntry(b); err == nil {
			t.Error("EncodeBlockEntry accepted a block without header")
		}
		if _, err := MarshalBlock(b); err == nil {
			t.Error("MarshalBlock accepted a block without header")
		}
	}
}

func TestDecodeEntryErrors(t *testing.T) {
	valid, err := EncodeBlockEntry(sampleBlock(t))
	if err != nil {
		t.Fatal(err)
	}
	noHeader, _ := proto.Marshal(&chainpb.Entry{Command: &chainpb.Entry_Block{Block: &chainpb.Block{Txs: [][]byte{{1}}}}})
	invalid := sampleBlock(t)
	invalid.Header.ChainId = "chain\xff"
	badUTF8, err := (&chainpb.Entry{Command: &chainpb.Entry_Block{Block: invalid}}).MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	unknown := protowire.AppendTag(nil, 9, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, []byte("future command"))

	tests := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"garbage", []byte{0xff, 0xff, 0xff, 0xff, 0xff}},
		{"text", []byte("not a protobuf entry")},
		{"no command", protowire.AppendVarint(protowire.AppendTag(nil, 5, protowire.VarintType), 1)},
		{"unknown command", unknown},
		{"block without header", noHeader},
		{"wrong wire type for block", protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 3)},
		{"chain id not UTF-8", badUTF8},
	}
	// Every strict prefix of a valid entry truncates its block field.
	for _, n := range []int{1, 2, 10, len(valid) / 2, len(valid) - 1} {
		tests = append(tests, struct {
			name string
			data []byte
		}{"truncated", valid[:n]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := DecodeEntry(tt.data); err == nil {
				t.Fatalf("DecodeEntry(%x) = %v, want error", tt.data, e)
			}
		})
	}
	if _, err := UnmarshalBlock([]byte{0xff}); err == nil {
		t.Fatal("UnmarshalBlock accepted garbage")
	}
	if _, err := UnmarshalBlock(nil); err == nil {
		t.Fatal("UnmarshalBlock accepted an empty block")
	}
	if raw, _ := invalid.MarshalVT(); raw != nil {
		if _, err := UnmarshalBlock(raw); err == nil {
			t.Fatal("UnmarshalBlock accepted a chain id that is not UTF-8")
		}
	}
}

// The generated MarshalVT writes what proto.Marshal writes, so entries and stored blocks stay readable by
// any protobuf implementation (and by earlier versions of the node).
func TestEncodingIsProtobufWireFormat(t *testing.T) {
	b := sampleBlock(t)
	many := sampleBlock(t)
	for i := range 1000 {
		many.Txs = append(many.Txs, bytes.Repeat([]byte{byte(i)}, 100))
	}
	for _, blk := range []*chainpb.Block{b, many, {Header: &chainpb.Header{}}} {
		entry, err := EncodeBlockEntry(blk)
		if err != nil {
			t.Fatal(err)
		}
		want, err := proto.Marshal(&chainpb.Entry{Command: &chainpb.Entry_Block{Block: blk}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(entry, want) {
			t.Fatalf("EncodeBlockEntry differs from proto.Marshal (%d vs %d bytes)", len(entry), len(want))
		}
		stored, err := MarshalBlock(blk)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := proto.Marshal(blk); !bytes.Equal(stored, want) {
			t.Fatal("MarshalBlock differs from proto.Marshal")
		}
	}
}

// FuzzDecodeEntry: arbitrary bytes never panic, and whatever decodes is a
// block with a header that re-encodes to an equal entry.
func FuzzDecodeEntry(f *testing.F) {
	valid, err := EncodeBlockEntry(sampleBlock(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Add(valid[:len(valid)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if err != nil {
			return
		}
		b := e.GetBlock()
		if b == nil || b.Header == nil {
			t.Fatal("decoded entry without block header")
		}
		again, err := EncodeBlockEntry(b)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		e2, err := DecodeEntry(again)
		// Re-encoding wraps the block in a fresh entry, dropping unknown fields of the old one by design.
		if err != nil || !proto.Equal(e.GetBlock(), e2.GetBlock()) {
			t.Fatalf("re-decode: %v", err)
		}
		_ = BlockHash(b)
	})
}

func TestHashes(t *testing.T) {
	b := sampleBlock(t)
	h1 := BlockHash(b)
	if len(h1) != HashSize {
		t.Fatalf("hash has %d bytes", len(h1))
	}
	c := proto.Clone(b).(*chainpb.Block)
	c.Txs = nil // txs are committed through tx_root, not hashed directly
	if !bytes.Equal(BlockHash(c), h1) {
		t.Fatal("block hash depends on more than the header")
	}
	c.Header.Height++
	if bytes.Equal(BlockHash(c), h1) {
		t.Fatal("block hash ignores the height")
	}
	if BlockHash(nil) != nil || HeaderHash(nil) != nil {
		t.Fatal("hash of nil is not nil")
	}
	if HeaderHash(&chainpb.Header{ChainId: "\xff"}) != nil {
		t.Fatal("hash of an unencodable header is not nil")
	}
	a, bb := []byte("a"), []byte("b")
	if bytes.Equal(TxRoot([][]byte{a, bb}), TxRoot([][]byte{bb, a})) {
		t.Fatal("tx root ignores order")
	}
	if bytes.Equal(TxRoot([][]byte{[]byte("ab")}), TxRoot([][]byte{a, bb})) {
		t.Fatal("tx root ignores tx boundaries")
	}
}
