// Package schedule plans a fault campaign: a pure function of a seed, so a failing run can be
// replayed fault for fault. Faults name roles (the leader, the k-th follower), not nodes: who leads
// is only known when the fault is injected.
package schedule

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The kinds of fault.
const (
	// KillLeader sends SIGKILL to the leader and starts it again on its data dir after Hold.
	KillLeader Kind = "kill-leader"
	// KillFollower does the same to a follower.
	KillFollower Kind = "kill-follower"
	// PauseLeader sends SIGSTOP to the leader and SIGCONT after Hold: a leader that wakes up late.
	PauseLeader Kind = "pause-leader"
	// IsolateLeader takes the leader's link down for Hold (silent drops, host included).
	IsolateLeader Kind = "isolate-leader"
	// SplitLeaderMinority partitions the leader and Minority-1 followers from the rest for Hold.
	SplitLeaderMinority Kind = "split-leader-minority"
	// SplitLeaderMajority partitions Minority followers from the rest (the leader keeps a quorum).
	SplitLeaderMajority Kind = "split-leader-majority"
	// Flap takes one node's link down and up every FlapPeriod for Hold.
	Flap Kind = "flap"
	// Restart stops a node with SIGTERM (a leader hands over first) and starts it after Hold.
	Restart Kind = "restart"
	// Wipe stops a node, removes it from Raft, deletes its data dir and adds it back as a non-voter
	// with --initial-cluster-state existing; autopilot promotes it once caught up.
	Wipe Kind = "wipe"
	// QuorumLoss pauses (SIGSTOP) a majority including the leader for Hold: no quorum is left, so
	// the chain must stop, and resume after SIGCONT.
	QuorumLoss Kind = "quorum-loss"
)

// Kinds lists every kind, in a fixed order.
var Kinds = []Kind{KillLeader, KillFollower, PauseLeader, IsolateLeader, SplitLeaderMinority, SplitLeaderMajority, Flap, Restart, Wipe, QuorumLoss}

// weights make the leader faults, the ones that test failover, the most common.
var weights = map[Kind]int{
	KillLeader: 4, KillFollower: 2, PauseLeader: 3, IsolateLeader: 3, SplitLeaderMinority: 3,
	SplitLeaderMajority: 2, Flap: 2, Restart: 2, Wipe: 2, QuorumLoss: 1,
}

// LeavesQuorum reports whether a fault of this kind leaves a quorum able to produce, so the chain
// must resume within the failover bound.
func (k Kind) LeavesQuorum() bool { return k != QuorumLoss }

// Fault is one planned fault.
type Fault struct {
	// Index counts from 1.
	Index int  `json:"index"`
	Kind  Kind `json:"kind"`
	// OnLeader makes Flap, Restart and Wipe hit the leader; otherwise Follower picks a follower.
	OnLeader bool `json:"onLeader,omitempty"`
	// Follower picks the follower (modulo their number, in ID order) for follower faults.
	Follower int `json:"follower"`
	// Minority is the size of the smaller side of a split.
	Minority int `json:"minority,omitempty"`
	// Hold is how long the fault lasts before it is healed.
	Hold time.Duration `json:"hold"`
	// FlapPeriod is the time between link changes of a Flap.
	FlapPeriod time.Duration `json:"flapPeriod,omitempty"`
	// Quiet is the pause after the cluster recovered, before the next fault.
	Quiet time.Duration `json:"quiet"`
}

func (f Fault) String() string {
	target := fmt.Sprintf("follower#%d", f.Follower)
	switch {
	case f.Kind == KillLeader || f.Kind == PauseLeader || f.Kind == IsolateLeader || f.OnLeader:
		target = "leader"
	case f.Kind == SplitLeaderMinority:
		target = fmt.Sprintf("leader+%d vs rest", f.Minority-1)
	case f.Kind == SplitLeaderMajority:
		target = fmt.Sprintf("%d followers vs rest", f.Minority)
	case f.Kind == QuorumLoss:
		target = "leader+majority"
	}
	s := fmt.Sprintf("#%d %s %s hold %v", f.Index, f.Kind, target, f.Hold)
	if f.Kind == Flap {
		s += fmt.Sprintf(" every %v", f.FlapPeriod)
	}
	return s
}

// Plan returns n faults for a cluster of nodes members, as a pure function of seed. The first
// len(Kinds) faults are every kind once, in a seeded order, so that any run of at least that many
// faults covers them all; the rest are drawn by weight.
func Plan(seed int64, n, nodes int) ([]Fault, error) {
	if n < 0 || n > 100_000 {
		return nil, fmt.Errorf("cannot plan %d faults", n)
	}
	if nodes < 3 || nodes%2 == 0 {
		return nil, fmt.Errorf("cannot plan faults for %d nodes: need an odd number of at least 3", nodes)
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	order := append([]Kind(nil), Kinds...)
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	total := 0
	for _, k := range Kinds {
		total += weights[k]
	}
	faults := make([]Fault, 0, n)
	for i := 0; i < n; i++ {
		var k Kind
		if i < len(order) {
			k = order[i]
		} else {
			x := r.IntN(total)
			for _, kk := range Kinds {
				if x < weights[kk] {
					k = kk
					break
				}
				x -= weights[kk]
			}
		}
		faults = append(faults, draw(r, i+1, k, nodes))
	}
	return faults, nil
}

// between draws a duration in [lo, hi), in whole milliseconds.
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	ms := lo.Milliseconds() + r.Int64N((hi - lo).Milliseconds())
	return time.Duration(ms) * time.Millisecond
}

func draw(r *rand.Rand, index int, k Kind, nodes int) Fault {
	minority := (nodes - 1) / 2
	f := Fault{Index: index, Kind: k, Follower: r.IntN(nodes - 1), Quiet: between(r, 200*time.Millisecond, time.Second)}
	switch k {
	case KillLeader, KillFollower:
		f.Hold = between(r, 300*time.Millisecond, 3*time.Second)
	case PauseLeader:
		f.Hold = between(r, 500*time.Millisecond, 3*time.Second)
	case IsolateLeader:
		f.Hold = between(r, time.Second, 4*time.Second)
	case SplitLeaderMinority, SplitLeaderMajority:
		f.Minority = 1 + r.IntN(minority)
		f.Hold = between(r, time.Second, 4*time.Second)
	case Flap:
		f.OnLeader = r.IntN(2) == 0
		f.Hold = between(r, 2*time.Second, 4*time.Second)
		f.FlapPeriod = between(r, 150*time.Millisecond, 700*time.Millisecond)
	case Restart:
		f.OnLeader = r.IntN(2) == 0
		f.Hold = between(r, 0, time.Second)
	case Wipe:
		f.OnLeader = r.IntN(3) == 0
	case QuorumLoss:
		f.Hold = between(r, 500*time.Millisecond, 2*time.Second)
	}
	return f
}
