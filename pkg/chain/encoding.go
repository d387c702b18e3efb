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
	if err := wellFormedEntry(data); err != nil {
		return nil, fmt.Errorf("cannot decode entry: %w", err)
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
		if err := checkStrings(c.Block); err != nil {
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
	if err := wellFormedBlock(data); err != nil {
		return nil, fmt.Errorf("cannot unmarshal block: %w", err)
	}
	if err := b.UnmarshalVT(data); err != nil {
		return nil, fmt.Errorf("cannot unmarshal block: %w", err)
	}
	if b.Header == nil {
		return nil, fmt.Errorf("cannot unmarshal block: %w", errNoHeader)
	}
	if err := checkStrings(&b); err != nil {
		return nil, fmt.Errorf("cannot unmarshal block: %w", err)
	}
	return &b, nil
}

// The generated decoder is laxer than proto.Unmarshal about fields it does not know (FuzzDecodeEntry compares
// the two): it skips a group closed by another field number and takes field numbers beyond the protobuf range.
// wellFormedEntry and wellFormedBlock check the wire format first, as proto.Unmarshal does: every tag valid, every
// length within the input, every group closed by its own field number, in the entry, its block and the header.
// Walking tags and lengths costs a few microseconds for a 1,000-tx block.

func wellFormedEntry(b []byte) error {
	return wellFormed(b, func(n protowire.Number) func([]byte) error {
		if n == 1 { // Entry.block
			return wellFormedBlock
		}
		return nil
	})
}

func wellFormedBlock(b []byte) error {
	return wellFormed(b, func(n protowire.Number) func([]byte) error {
		if n == 1 { // Block.header
			return wellFormedHeader
		}
		return nil
	})
}

func wellFormedHeader(b []byte) error {
	return wellFormed(b, func(protowire.Number) func([]byte) error { return nil })
}

// wellFormed walks the fields of one message; nested says which length-delimited fields hold a message to walk.
func wellFormed(b []byte, nested func(protowire.Number) func([]byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("malformed field: %w", protowire.ParseError(n))
		}
		if !num.IsValid() {
			return fmt.Errorf("field number %d out of range", num)
		}
		m, err := fieldLen(num, typ, b[n:])
		if err != nil {
			return err
		}
		if check := nested(num); check != nil && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b[n:])
			if err := check(v); err != nil {
				return err
			}
		}
		b = b[n+m:]
	}
	return nil
}

// fieldLen is the length of a field's value; a group's fields are checked like a message's, up to the end of
// the group, which must carry the group's own field number.
func fieldLen(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
	switch typ {
	case protowire.StartGroupType:
		total := 0
		for {
			inner, ityp, n := protowire.ConsumeTag(b[total:])
			if n < 0 {
				return 0, fmt.Errorf("malformed group %d: %w", num, protowire.ParseError(n))
			}
			if !inner.IsValid() {
				return 0, fmt.Errorf("field number %d out of range in group %d", inner, num)
			}
			total += n
			if ityp == protowire.EndGroupType {
				if inner != num {
					return 0, fmt.Errorf("group %d ended by field %d", num, inner)
				}
				return total, nil
			}
			m, err := fieldLen(inner, ityp, b[total:])
			if err != nil {
				return 0, err
			}
			total += m
		}
	case protowire.EndGroupType:
		return 0, fmt.Errorf("end of group %d outside a group", num)
	}
	m := protowire.ConsumeFieldValue(num, typ, b)
	if m < 0 {
		return 0, fmt.Errorf("malformed field %d: %w", num, protowire.ParseError(m))
	}
	return m, nil
}

// checkStrings refuses what proto.Unmarshal refuses and UnmarshalVT lets through: a proto3 string that is not
// valid UTF-8.
func checkStrings(b *chainpb.Block) error {
	if !utf8.ValidString(b.Header.ChainId) {
		return errors.New("header chain_id is not valid UTF-8")
	}
	return nil
}
