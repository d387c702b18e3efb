package checker

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/seqops/sequencer-operator/internal/chaos/load"
	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

const chainID = "chaos-test"

var (
	key    = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	signer = chain.NewSigner(key)
	pub    = signer.PublicKey()
	t0     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// build makes a valid chain of n blocks, 100ms apart from t0; txs[h] are block h's transactions.
func build(n int, txs map[int][]string) []*chainpb.Block {
	var out []*chainpb.Block
	var parent []byte
	for h := 1; h <= n; h++ {
		out = append(out, block(h, parent, t0.Add(time.Duration(h)*100*time.Millisecond), txs[h]))
		parent = chain.BlockHash(out[len(out)-1])
	}
	return out
}

func block(h int, parent []byte, at time.Time, txs []string) *chainpb.Block {
	raw := make([][]byte, len(txs))
	for i, tx := range txs {
		raw[i] = []byte(tx)
	}
	b := &chainpb.Block{Header: &chainpb.Header{ChainId: chainID, Height: uint64(h), ParentHash: parent, TimeUnixNano: at.UnixNano(), TxRoot: chain.TxRoot(raw), StateRoot: []byte{1}}, Txs: raw}
	signer.Sign(b)
	return b
}

func clone(bs []*chainpb.Block) []*chainpb.Block {
	out := make([]*chainpb.Block, len(bs))
	for i, b := range bs {
		out[i] = proto.Clone(b).(*chainpb.Block)
	}
	return out
}

func checks(vs []Violation) string {
	var s []string
	for _, v := range vs {
		s = append(s, v.Check)
	}
	return strings.Join(s, ",")
}

func TestCheckChains(t *testing.T) {
	good := build(5, nil)
	forked := clone(good)
	forked[3] = block(4, chain.BlockHash(good[2]), t0.Add(401*time.Millisecond), []string{"other"})
	forked[4] = block(5, chain.BlockHash(forked[3]), t0.Add(500*time.Millisecond), nil)
	unsigned := clone(good)
	unsigned[2].Signature[0] ^= 1
	badParent := clone(good)
	badParent[2].Header.ParentHash = []byte("nope")
	signer.Sign(badParent[2])
	gap := append(clone(good[:2]), clone(good[3:])...)
	backInTime := build(2, nil)
	backInTime = append(backInTime, block(3, chain.BlockHash(backInTime[1]), t0, nil))
	tampered := clone(good)
	tampered[1].Txs = [][]byte{[]byte("injected")}
	otherChain := clone(good[:1])
	otherChain[0].Header.ChainId = "other"
	signer.Sign(otherChain[0])
	_, otherKey, _ := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 64)))
	foreign := clone(good[:1])
	chain.NewSigner(otherKey).Sign(foreign[0])

	tests := []struct {
		name   string
		chains []NodeChain
		want   string // comma-separated checks, in order
	}{
		{"agreeing nodes, one behind", []NodeChain{{Name: "a", Blocks: good}, {Name: "b", Blocks: clone(good)}, {Name: "c", Blocks: clone(good[:3])}}, ""},
		{"fork between nodes", []NodeChain{{Name: "a", Blocks: good}, {Name: "b", Blocks: forked}}, "fork,fork"},
		{"bad signature", []NodeChain{{Name: "a", Blocks: unsigned}}, "chain"},
		{"bad parent link", []NodeChain{{Name: "a", Blocks: badParent}}, "chain,chain"}, // block 3's parent, and block 4 still links to the old hash
		{"missing height", []NodeChain{{Name: "a", Blocks: gap}}, "chain,chain,chain"},
		{"partial archive with a hole", []NodeChain{{Name: "a", Blocks: good}, {Name: "wiped", Blocks: []*chainpb.Block{nil, nil, good[2], good[3]}, Partial: true}}, ""},
		{"hole in a live chain", []NodeChain{{Name: "a", Blocks: good}, {Name: "b", Blocks: []*chainpb.Block{good[0], nil, good[2]}}}, "chain"},
		{"time goes back", []NodeChain{{Name: "a", Blocks: backInTime}}, "chain"},
		{"tampered txs", []NodeChain{{Name: "a", Blocks: tampered}}, "chain"},
		{"wrong chain ID", []NodeChain{{Name: "a", Blocks: otherChain}}, "chain"},
		{"foreign proposer", []NodeChain{{Name: "a", Blocks: foreign}}, "chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			canonical, vs := CheckChains(tt.chains, chainID, pub)
			if got := checks(vs); got != tt.want {
				t.Fatalf("violations %q, want %q: %v", got, tt.want, vs)
			}
			if len(canonical) == 0 {
				t.Fatal("no canonical chain")
			}
		})
	}
}

func TestCheckObservations(t *testing.T) {
	good := build(3, nil)
	hash := func(i int) string { return hex.EncodeToString(chain.BlockHash(good[i-1])) }
	tests := []struct {
		name string
		obs  []Observation
		want string
	}{
		{"all canonical", []Observation{{"a", 1, hash(1), t0}, {"b", 3, hash(3), t0}, {"c", 0, "", t0}}, ""},
		{"served a block later replaced", []Observation{{"a", 2, "beef", t0}, {"b", 2, "beef", t0}}, "observed"},
		{"served a head above the final chain", []Observation{{"a", 4, "cafe", t0}}, "observed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checks(CheckObservations(good, tt.obs)); got != tt.want {
				t.Fatalf("violations %q, want %q", got, tt.want)
			}
		})
	}
}

func txHash(tx string) string { return hex.EncodeToString(chain.TxHash([]byte(tx))) }

func attempt(id, tx string, try int, start, end time.Duration, acked bool, height uint64) load.Attempt {
	return load.Attempt{Tx: id, Try: try, Hash: txHash(tx), Start: t0.Add(start), End: t0.Add(end), Acked: acked, Height: height}
}

func TestCheckTxs(t *testing.T) {
	ms := time.Millisecond
	chainTxs := build(4, map[int][]string{1: {"A"}, 2: {"B", "C"}, 4: {"D"}})
	tests := []struct {
		name     string
		chain    []*chainpb.Block
		attempts []load.Attempt
		want     string
		acked    int
	}{
		{"clean history with a retry and an unacked inclusion", chainTxs, []load.Attempt{
			attempt("a", "A", 0, 0, 100*ms, true, 1),
			attempt("b", "B", 0, 110*ms, 150*ms, false, 0), // timed out, retried, acked
			attempt("b", "B", 1, 160*ms, 210*ms, true, 2),
			attempt("c", "C", 0, 120*ms, 900*ms, false, 0), // included but never acked: allowed
			attempt("d", "D", 0, 300*ms, 420*ms, true, 4),
			attempt("e", "E", 0, 300*ms, 420*ms, false, 0), // never included: allowed
		}, "", 3},
		{"acked but lost", chainTxs[:3], []load.Attempt{
			attempt("a", "A", 0, 0, 100*ms, true, 1), attempt("b", "B", 0, 0, 100*ms, true, 2), attempt("c", "C", 0, 0, 100*ms, false, 0),
			attempt("d", "D", 0, 0, 500*ms, true, 4),
		}, "tx", 3},
		{"acked at another height", chainTxs, []load.Attempt{
			attempt("a", "A", 0, 0, 100*ms, true, 2), attempt("b", "B", 0, 0, 100*ms, false, 0), attempt("c", "C", 0, 0, 100*ms, false, 0), attempt("d", "D", 0, 0, 500*ms, false, 0),
		}, "tx", 1},
		{"included twice", build(3, map[int][]string{1: {"A"}, 3: {"A"}}), []load.Attempt{
			attempt("a", "A", 0, 0, 100*ms, true, 1),
		}, "tx", 1},
		{"never submitted", build(1, map[int][]string{1: {"A", "Z"}}), []load.Attempt{
			attempt("a", "A", 0, 0, 100*ms, true, 1),
		}, "tx", 1},
		{"real-time order broken", chainTxs, []load.Attempt{
			attempt("d", "D", 0, 0, 50*ms, true, 4),      // acked at height 4 at 50ms…
			attempt("a", "A", 0, 60*ms, 100*ms, true, 1), // …yet A, sent later, sits at height 1
			attempt("b", "B", 0, 0, 100*ms, false, 0), attempt("c", "C", 0, 0, 100*ms, false, 0),
		}, "order", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, vs := CheckTxs(tt.chain, tt.attempts)
			if got := checks(vs); got != tt.want {
				t.Fatalf("violations %q, want %q: %v", got, tt.want, vs)
			}
			if st.Acked != tt.acked {
				t.Fatalf("acked %d, want %d (%+v)", st.Acked, tt.acked, st)
			}
		})
	}
}

func TestCheckResume(t *testing.T) {
	// Blocks every 100ms, except a hole between 1.0s and 2.5s.
	var blocks []*chainpb.Block
	var parent []byte
	h := 1
	for at := 100 * time.Millisecond; at <= 4*time.Second; at += 100 * time.Millisecond {
		if at > time.Second && at < 2500*time.Millisecond {
			continue
		}
		blocks = append(blocks, block(h, parent, t0.Add(at), nil))
		parent = chain.BlockHash(blocks[len(blocks)-1])
		h++
	}
	bound := 2 * time.Second
	tests := []struct {
		name    string
		faults  []FaultMark
		want    string
		resumes []time.Duration
	}{
		{"quick resume", []FaultMark{{Index: 1, Kind: "kill-leader", At: t0.Add(350 * time.Millisecond), LeftQuorum: true}}, "", []time.Duration{50 * time.Millisecond}},
		{"slow resume", []FaultMark{{Index: 1, Kind: "pause-leader", At: t0.Add(1050 * time.Millisecond), LeftQuorum: true}}, "resume", []time.Duration{1450 * time.Millisecond}},
		{"slow but bounded", []FaultMark{{Index: 1, Kind: "kill-leader", At: t0.Add(1050 * time.Millisecond), LeftQuorum: true}}, "", []time.Duration{1450 * time.Millisecond}},
		{"quorum loss is measured from its heal and not held to the bound", []FaultMark{{Index: 1, Kind: "quorum-loss", At: t0.Add(1050 * time.Millisecond), Healed: t0.Add(2450 * time.Millisecond)}}, "", []time.Duration{50 * time.Millisecond}},
		{"never resumed", []FaultMark{{Index: 1, Kind: "kill-leader", At: t0.Add(5 * time.Second), LeftQuorum: true}}, "resume", []time.Duration{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bound
			if tt.name == "slow resume" {
				b = time.Second
			}
			rs, vs := CheckResume(blocks, tt.faults, b)
			if got := checks(vs); got != tt.want {
				t.Fatalf("violations %q, want %q: %v", got, tt.want, vs)
			}
			for i, r := range rs {
				if r.Resume != tt.resumes[i] {
					t.Fatalf("fault %d resume %v, want %v", i, r.Resume, tt.resumes[i])
				}
			}
		})
	}
	// The stall covers the hole even when the first block after the fault came quickly.
	rs, _ := CheckResume(blocks, []FaultMark{{Index: 1, Kind: "flap", At: t0.Add(950 * time.Millisecond), LeftQuorum: true}}, bound)
	if rs[0].Resume != 50*time.Millisecond || rs[0].Stall != 1500*time.Millisecond {
		t.Fatalf("resume %v stall %v", rs[0].Resume, rs[0].Stall)
	}

}
