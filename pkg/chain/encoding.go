package chain

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

// Blocks and log entries are encoded with the vtprotobuf-generated MarshalVT (hack/gen-proto.sh): the same
// protobuf wire format as proto.Marshal, without its reflection, on the leader's commit path (DESIGN §7:
// protobuf ≥ 3× JSON). They are decoded with proto.Unmarshal, whose validation of input from the network and
// the disk is complete: differential fuzzing found the generated decoder laxer (groups closed by another
// field number, field numbers beyond the protobuf range, an unknown field decoded differently), so it is not
// used. Block hashes do not depend on either: they hash the header's deterministic encoding (hash.go).

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
	if err := proto.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("cannot decode entry: %w", err)
	}
	switch c := e.Command.(type) {
	case *chainpb.Entry_Block:
		if c.Block == nil || c.Block.Header == nil {
			return nil, fmt.Errorf("cannot decode entry: %w", errNoHeader)
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
	if err := proto.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("cannot unmarshal block: %w", err)
	}
	if b.Header == nil {
		return nil, fmt.Errorf("cannot unmarshal block: %w", errNoHeader)
	}
	return &b, nil
}
