package chain

import (
	"crypto/sha256"

	"google.golang.org/protobuf/proto"

	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

// HashSize is the length of every hash in the chain model (sha256).
const HashSize = sha256.Size

// deterministic makes hashes independent of map ordering and of the encoder's
// internal choices, so every node computes the same block hash.
var deterministic = proto.MarshalOptions{Deterministic: true}

// HeaderHash returns sha256 of the deterministic protobuf encoding of h. It
// returns nil for a nil header or one that cannot be encoded (a chain_id that
// is not valid UTF-8), which never equals a real hash.
func HeaderHash(h *chainpb.Header) []byte {
	if h == nil {
		return nil
	}
	data, err := deterministic.Marshal(h)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(data)
	return sum[:]
}

// BlockHash is the hash of the block's header; nil for a nil block or header.
func BlockHash(b *chainpb.Block) []byte {
	if b == nil {
		return nil
	}
	return HeaderHash(b.GetHeader())
}

// TxHash identifies a transaction: sha256 of its bytes.
func TxHash(tx []byte) []byte {
	sum := sha256.Sum256(tx)
	return sum[:]
}

// TxRoot commits to the ordered transactions: sha256 over the concatenation of
// their hashes. Order matters, so reordering changes the root.
func TxRoot(txs [][]byte) []byte {
	h := sha256.New()
	for _, tx := range txs {
		sum := sha256.Sum256(tx)
		h.Write(sum[:])
	}
	return h.Sum(nil)
}
