// Package checker judges a fault campaign after the fact. Its functions are pure: they take the
// chains fetched from every node (and the chains of wiped data dirs), the heads observed during the
// run, the load generator's log and the fault times, and return violations. A correct run has none.
package checker

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/seqops/sequencer-operator/internal/chaos/load"
	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

// Violation is one broken invariant.
type Violation struct {
	// Check names the invariant: chain, fork, observed, tx, order or resume.
	Check  string `json:"check"`
	Detail string `json:"detail"`
}

func (v Violation) String() string { return v.Check + ": " + v.Detail }

// NodeChain is the chain one node holds: Blocks[i] is height i+1. A wiped data dir's chain is one too.
type NodeChain struct {
	Name   string
	Blocks []*chainpb.Block
	// Partial allows nil blocks: history a node restored from a snapshot had not backfilled yet when
	// its data dir was wiped. A live node's chain is never partial.
	Partial bool
}

// CheckChains verifies each chain on its own (heights 1, 2, 3… with parent links, strictly
// increasing times, the chain ID, tx roots and the proposer's signature) and all of them against each
// other (one hash per height). It returns the longest chain as the canonical one.
func CheckChains(chains []NodeChain, chainID string, proposer ed25519.PublicKey) ([]*chainpb.Block, []Violation) {
	var vs []Violation
	var canonical []*chainpb.Block
	hashes := map[uint64]map[string][]string{} // height → hash → nodes
	for _, nc := range chains {
		var prevHash []byte
		var prevTime int64
		havePrev := true // block 1's parent is the empty hash
		for i, b := range nc.Blocks {
			want := uint64(i + 1)
			if b == nil {
				if !nc.Partial {
					vs = append(vs, Violation{"chain", fmt.Sprintf("%s: block %d is missing", nc.Name, want)})
				}
				havePrev = false
				continue
			}
			h := b.GetHeader()
			if h == nil {
				vs = append(vs, Violation{"chain", fmt.Sprintf("%s: block at position %d has no header", nc.Name, want)})
				break
			}
			bad := func(format string, args ...any) {
				vs = append(vs, Violation{"chain", fmt.Sprintf("%s: block %d: ", nc.Name, want) + fmt.Sprintf(format, args...)})
			}
			if h.Height != want {
				bad("claims height %d", h.Height)
			}
			if havePrev && !bytes.Equal(h.ParentHash, prevHash) {
				bad("parent hash %x is not the hash %x of block %d", h.ParentHash, prevHash, want-1)
			}
			if havePrev && i > 0 && h.TimeUnixNano <= prevTime {
				bad("time %d is not after the parent's %d", h.TimeUnixNano, prevTime)
			}
			if h.ChainId != chainID {
				bad("chain ID %q, want %q", h.ChainId, chainID)
			}
			if err := chain.VerifyBlockSignature(b, proposer); err != nil {
				bad("signature: %v", err)
			}
			if !bytes.Equal(h.TxRoot, chain.TxRoot(b.Txs)) {
				bad("tx root does not match its transactions")
			}
			hash := chain.BlockHash(b)
			byHash := hashes[want]
			if byHash == nil {
				byHash = map[string][]string{}
				hashes[want] = byHash
			}
			byHash[hex.EncodeToString(hash)] = append(byHash[hex.EncodeToString(hash)], nc.Name)
			prevHash, prevTime, havePrev = hash, h.TimeUnixNano, true
		}
		if !nc.Partial && len(nc.Blocks) > len(canonical) {
			canonical = nc.Blocks
		}
	}
	heights := make([]uint64, 0, len(hashes))
	for h, byHash := range hashes {
		if len(byHash) > 1 {
			heights = append(heights, h)
		}
	}
	sort.Slice(heights, func(i, j int) bool { return heights[i] < heights[j] })
	for _, h := range heights {
		vs = append(vs, Violation{"fork", fmt.Sprintf("height %d has %d different blocks: %v", h, len(hashes[h]), hashes[h])})
	}
	return canonical, vs
}

// Observation is a node's head seen during the run (GET /raft).
type Observation struct {
	Node   string    `json:"node"`
	Height uint64    `json:"height"`
	Hash   string    `json:"hash"`
	At     time.Time `json:"at"`
}

// CheckObservations verifies that every head a node served during the run is the canonical block at
// that height: a block served and later lost or replaced is a violation even if no node holds it
// any more (a wiped node, for instance).
func CheckObservations(canonical []*chainpb.Block, obs []Observation) []Violation {
	var vs []Violation
	reported := map[uint64]bool{}
	for _, o := range obs {
		if o.Height == 0 || reported[o.Height] {
			continue
		}
		if o.Height > uint64(len(canonical)) {
			reported[o.Height] = true
			vs = append(vs, Violation{"observed", fmt.Sprintf("%s served head %d at %s, above the final chain's head %d: a committed block was lost", o.Node, o.Height, o.At.Format(time.RFC3339Nano), len(canonical))})
			continue
		}
		if want := hex.EncodeToString(chain.BlockHash(canonical[o.Height-1])); o.Hash != want {
			reported[o.Height] = true
			vs = append(vs, Violation{"observed", fmt.Sprintf("%s served block %s at height %d at %s; the final chain has %s", o.Node, o.Hash, o.Height, o.At.Format(time.RFC3339Nano), want)})
		}
	}
	return vs
}

// TxStats summarise the transaction history.
type TxStats struct {
	Submitted int `json:"submitted"` // distinct transactions
	Attempts  int `json:"attempts"`
	Acked     int `json:"acked"` // distinct transactions acknowledged as committed
	Included  int `json:"included"`
	// IncludedUnacked are transactions in the chain whose sender never got an ack (a timeout or a
	// failover ate the answer); allowed, at most once.
	IncludedUnacked int `json:"includedUnacked"`
}

// CheckTxs verifies the transaction history against the canonical chain: every acknowledged
// transaction is included exactly once, at the height its ack named; no transaction is included
// twice; the chain holds nothing that was not submitted; and a transaction submitted after another
// was acknowledged lands in a later block (real-time order, the linearizability of the log).
func CheckTxs(canonical []*chainpb.Block, attempts []load.Attempt) (TxStats, []Violation) {
	var vs []Violation
	var st TxStats
	included := map[string][]uint64{} // tx hash → heights
	for _, b := range canonical {
		for _, tx := range b.Txs {
			h := hex.EncodeToString(chain.TxHash(tx))
			included[h] = append(included[h], b.GetHeader().GetHeight())
		}
	}
	type txInfo struct {
		id         string
		hash       string
		firstStart time.Time
		acks       []load.Attempt
	}
	txs := map[string]*txInfo{}
	var order []*txInfo
	for _, a := range attempts {
		st.Attempts++
		t := txs[a.Tx]
		if t == nil {
			t = &txInfo{id: a.Tx, hash: a.Hash, firstStart: a.Start}
			txs[a.Tx] = t
			order = append(order, t)
		}
		if a.Hash != t.hash {
			vs = append(vs, Violation{"tx", fmt.Sprintf("%s: attempts carry two hashes %s and %s", a.Tx, t.hash, a.Hash)})
		}
		if a.Start.Before(t.firstStart) {
			t.firstStart = a.Start
		}
		if a.Acked {
			t.acks = append(t.acks, a)
		}
	}
	st.Submitted = len(order)
	byHash := map[string]bool{}
	type ack struct {
		end    time.Time
		height uint64
		id     string
	}
	var acks []ack
	for _, t := range order {
		byHash[t.hash] = true
		heights := included[t.hash]
		if len(heights) > 1 {
			vs = append(vs, Violation{"tx", fmt.Sprintf("%s (%s) is included %d times, at heights %v", t.id, short(t.hash), len(heights), heights)})
		}
		if len(heights) > 0 {
			st.Included++
			if len(t.acks) == 0 {
				st.IncludedUnacked++
			}
		}
		if len(t.acks) == 0 {
			continue
		}
		st.Acked++
		if len(heights) == 0 {
			vs = append(vs, Violation{"tx", fmt.Sprintf("%s (%s) was acknowledged at height %d by node %d but is not in the chain", t.id, short(t.hash), t.acks[0].Height, t.acks[0].Node)})
			continue
		}
		for _, a := range t.acks {
			if a.Height != heights[0] {
				vs = append(vs, Violation{"tx", fmt.Sprintf("%s (%s) was acknowledged at height %d by node %d but is included at height %d", t.id, short(t.hash), a.Height, a.Node, heights[0])})
			}
			acks = append(acks, ack{end: a.End, height: a.Height, id: t.id})
		}
	}
	for h, heights := range included {
		if !byHash[h] {
			vs = append(vs, Violation{"tx", fmt.Sprintf("transaction %s at heights %v was never submitted", short(h), heights)})
		}
	}
	// Real-time order: the highest acknowledged height before each instant; a transaction first
	// submitted after that instant must be in a higher block.
	sort.Slice(acks, func(i, j int) bool { return acks[i].end.Before(acks[j].end) })
	prefixMax := make([]uint64, len(acks))
	prefixID := make([]string, len(acks))
	for i, a := range acks {
		prefixMax[i], prefixID[i] = a.height, a.id
		if i > 0 && prefixMax[i-1] > a.height {
			prefixMax[i], prefixID[i] = prefixMax[i-1], prefixID[i-1]
		}
	}
	for _, t := range order {
		heights := included[t.hash]
		if len(heights) == 0 {
			continue
		}
		i := sort.Search(len(acks), func(i int) bool { return !acks[i].end.Before(t.firstStart) }) - 1
		if i >= 0 && heights[0] <= prefixMax[i] {
			vs = append(vs, Violation{"order", fmt.Sprintf("%s was first submitted after %s was acknowledged at height %d, yet it is included at height %d", t.id, prefixID[i], prefixMax[i], heights[0])})
		}
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].Detail < vs[j].Detail })
	return st, vs
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// FaultMark is when a fault happened, for the resume check.
type FaultMark struct {
	Index int       `json:"index"`
	Kind  string    `json:"kind"`
	At    time.Time `json:"at"`
	// Healed is when the fault was lifted (the process restarted or resumed, the link healed).
	Healed time.Time `json:"healed"`
	// LeftQuorum says a quorum could still produce during the fault.
	LeftQuorum bool `json:"leftQuorum"`
}

// Resume is how the chain fared after one fault.
type Resume struct {
	Index int    `json:"index"`
	Kind  string `json:"kind"`
	// Resume is from the fault (or, for a fault that took the quorum away, from its heal) to the
	// first block whose time is after that instant.
	Resume time.Duration `json:"resume"`
	// Stall is the longest time without a block from the fault until the next fault (the wait for
	// the first block included): informative, it also covers heals and rejoins.
	Stall time.Duration `json:"stall"`
	// Checked is true when Resume is held to the bound (the fault left a quorum).
	Checked bool `json:"checked"`
}

// CheckResume measures every fault's resume time on the canonical chain and flags a fault that left
// a quorum but after which the chain took longer than bound to produce a block. faults must be in
// time order.
func CheckResume(canonical []*chainpb.Block, faults []FaultMark, bound time.Duration) ([]Resume, []Violation) {
	times := make([]time.Time, len(canonical))
	for i, b := range canonical {
		times[i] = time.Unix(0, b.GetHeader().GetTimeUnixNano())
	}
	firstAfter := func(t time.Time) int { return sort.Search(len(times), func(i int) bool { return times[i].After(t) }) }
	var out []Resume
	var vs []Violation
	for k, f := range faults {
		from := f.At
		if !f.LeftQuorum && !f.Healed.IsZero() {
			from = f.Healed
		}
		r := Resume{Index: f.Index, Kind: f.Kind, Checked: f.LeftQuorum}
		i := firstAfter(from)
		if i == len(times) {
			vs = append(vs, Violation{"resume", fmt.Sprintf("fault #%d (%s) at %s: no block after it", f.Index, f.Kind, from.Format(time.RFC3339Nano))})
			out = append(out, r)
			continue
		}
		r.Resume = times[i].Sub(from)
		end := times[len(times)-1]
		if k+1 < len(faults) {
			end = faults[k+1].At
		}
		r.Stall = r.Resume
		if j := firstAfter(f.At); j < len(times) {
			r.Stall = max(r.Stall, times[j].Sub(f.At))
			for ; j+1 < len(times) && !times[j+1].After(end); j++ {
				r.Stall = max(r.Stall, times[j+1].Sub(times[j]))
			}
		}
		if r.Checked && r.Resume > bound {
			vs = append(vs, Violation{"resume", fmt.Sprintf("fault #%d (%s): first block %v after the fault, bound %v", f.Index, f.Kind, r.Resume.Round(time.Millisecond), bound)})
		}
		out = append(out, r)
	}
	return out, vs
}
