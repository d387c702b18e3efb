// Package chain is the chain model of the sequencer: the block format and its
// hashing and signing, the Raft log envelope, a deterministic executor, the
// persistent chain store, Raft snapshots and the mempool.
//
// The Raft FSM (pkg/raft) drives a Chain: every committed log entry carries a
// full signed block, and Chain.Apply validates it (height, parent, time,
// proposer, signature, roots) before persisting block, state and tx index in
// one synced bbolt transaction. The producer (pkg/failover) builds the next
// block with Chain.Build from transactions taken from a Mempool.
//
// Conventions fixed here:
//   - The first block has height 1 and an empty parent hash; an empty chain
//     has the zero Head (height 0, nil hash, zero time, nil state root).
//   - The state root before the first block is empty; each block's state root
//     is derived from its parent's by the Executor.
//   - A block hash is sha256 of the deterministic protobuf encoding of its
//     header; the signature is ed25519 over that hash.
package chain
