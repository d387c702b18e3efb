package chain

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

// Blocks and log entries are encoded with the vtprotobuf-generated MarshalVT/UnmarshalVT (hack/gen-proto.sh):
// the same protobuf wire format as proto.Marshal, without its reflection, which is what keeps encoding a
// 1,000-tx block several times faster than JSON (DESIGN §7). Block hashes do not depend on it: they hash the
// header's deterministic encoding (hash.go).

// errNoHeader is returned for a block without a header, which no valid block
// lacks.
var errNoHeader = errors.New("block has no header")

// EncodeBlockEntry wraps b in a Raft log Entry and marshals it.
func EncodeBlockEntry(b *chainpb.Block) ([]byte, error) {
	if b == nil || b.Header == nil {
		return nil, fmt.Errorf("cannot encode block entry: %w", errNoHeader)
	}
	data, err := (&chainpb.Entry{Command: &chainpb.Entry_Block{Block: b}}).MarshalVT()
	if err != nil {
		return nil, fmt.Errorf("cannot encode block entry at height %d: %w", b.Header.Height, err)
	}
	return data, nil
}

// DecodeEntry parses a Raft log entry. It fails on empty or malformed input,
// on an entry without a known command (for instance one written by a newer
// version) and on a block without a header.
func DecodeEntry(data []byte) (*chainpb.Entry, error) {
	if len(data) == 0 {
		return nil, errors.New("cannot decode entry: empty")
	}
	var e chainpb.Entry
	if err := e.UnmarshalVT(data); err != nil {
		return nil, fmt.Errorf("cannot decode entry: %w", err)
	}
	switch c := e.Command.(type) {
	case *chainpb.Entry_Block:
		if c.Block == nil || c.Block.Header == nil {
			return nil, fmt.Errorf("cannot decode entry: %w", errNoHeader)
		}
		if err := checkStrict(&e, c.Block); err != nil {
			return nil, fmt.Errorf("cannot decode entry: %w", err)
		}
	case nil:
		return nil, errors.New("cannot decode entry: no known command")
	default:
		return nil, fmt.Errorf("cannot decode entry: unknown command %T", c)
	}
	return &e, nil
}

// MarshalBlock encodes a block for storage or the wire.
func MarshalBlock(b *chainpb.Block) ([]byte, error) {
	if b == nil || b.Header == nil {
		return nil, fmt.Errorf("cannot marshal block: %w", errNoHeader)
	}
	data, err := b.MarshalVT()
	if err != nil {
		return nil, fmt.Errorf("cannot marshal block %d: %w", b.Header.Height, err)
	}
	return data, nil
}

// UnmarshalBlock decodes a block; it fails on malformed input and on a block
// without a header.
func UnmarshalBlock(data []byte) (*chainpb.Block, error) {
	var b chainpb.Block
	if err := b.UnmarshalVT(data); err != nil {
		return nil, fmt.Errorf("cannot unmarshal block: %w", err)
	}
	if b.Header == nil {
		return nil, fmt.Errorf("cannot unmarshal block: %w", errNoHeader)
	}
	if err := checkStrict(nil, &b); err != nil {
		return nil, fmt.Errorf("cannot unmarshal block: %w", err)
	}
	return &b, nil
}

// checkStrict refuses what proto.Unmarshal refuses and UnmarshalVT lets through (FuzzDecodeEntry compares
// the two): a proto3 string that is not valid UTF-8, and unknown fields that are not well-formed (UnmarshalVT
// skips a group without checking that it ends with its own field number). e may be nil.
func checkStrict(e *chainpb.Entry, b *chainpb.Block) error {
	if !utf8.ValidString(b.Header.ChainId) {
		return errors.New("header chain_id is not valid UTF-8")
	}
	unknown := [][]byte{b.ProtoReflect().GetUnknown(), b.Header.ProtoReflect().GetUnknown()}
	if e != nil {
		unknown = append(unknown, e.ProtoReflect().GetUnknown())
	}
	for _, raw := range unknown {
		for len(raw) > 0 {
			_, _, n := protowire.ConsumeField(raw)
			if n < 0 {
				return fmt.Errorf("malformed unknown field: %w", protowire.ParseError(n))
			}
			raw = raw[n:]
		}
	}
	return nil
}
