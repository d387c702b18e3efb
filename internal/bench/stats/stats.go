// Package stats holds what every benchmark of seqbench shares: distribution summaries and the Raft
// timing profiles the failover benchmarks compare.
package stats

import (
	"math"
	"sort"
	"time"
)

// Summary describes a distribution of durations in milliseconds.
type Summary struct {
	N    int     `json:"n"`
	Min  float64 `json:"minMs"`
	P50  float64 `json:"p50Ms"`
	P90  float64 `json:"p90Ms"`
	P99  float64 `json:"p99Ms"`
	Max  float64 `json:"maxMs"`
	Mean float64 `json:"meanMs"`
}

// Summarize returns the summary of samples (milliseconds). Percentiles are nearest-rank, so with
// fewer than 100 samples p99 is the maximum.
func Summarize(samples []float64) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	return Summary{
		N: len(s), Min: s[0], Max: s[len(s)-1], Mean: sum / float64(len(s)),
		P50: Percentile(s, 50), P90: Percentile(s, 90), P99: Percentile(s, 99),
	}
}

// Percentile is the nearest-rank percentile p (0–100) of sorted samples.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Ms converts a duration to fractional milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Timings is a Raft timing profile: heartbeat, election and leader-lease timeouts.
type Timings struct {
	// Name labels the profile in the report: "default", "ev-node" or "hashicorp".
	Name        string        `json:"name"`
	Heartbeat   time.Duration `json:"heartbeat"`
	Election    time.Duration `json:"election"`
	LeaderLease time.Duration `json:"leaderLease"`
	// Commit is the Raft commit timeout; every profile uses the node's default (10 ms) so that only
	// the three failure-detection timeouts differ.
	Commit time.Duration `json:"commit"`
}

// Label is "100/400/50 ms".
func (t Timings) Label() string {
	return trimMs(t.Heartbeat) + "/" + trimMs(t.Election) + "/" + trimMs(t.LeaderLease) + " ms"
}

func trimMs(d time.Duration) string {
	return formatInt(int64(d / time.Millisecond))
}

func formatInt(v int64) string {
	if v == 0 {
		return "0"
	}
	neg := v < 0
	if neg {
		v = -v
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// The three profiles of the failover benchmark.
var (
	// DefaultProfile is the node's own default (DESIGN.md §3).
	DefaultProfile = Timings{Name: "default", Heartbeat: 100 * time.Millisecond, Election: 400 * time.Millisecond, LeaderLease: 50 * time.Millisecond, Commit: 10 * time.Millisecond}
	// EvNodeProfile is the LAN timing ev-node recommends.
	EvNodeProfile = Timings{Name: "ev-node", Heartbeat: 92 * time.Millisecond, Election: 368 * time.Millisecond, LeaderLease: 46 * time.Millisecond, Commit: 10 * time.Millisecond}
	// HashicorpProfile is hashicorp/raft's DefaultConfig.
	HashicorpProfile = Timings{Name: "hashicorp", Heartbeat: time.Second, Election: time.Second, LeaderLease: 500 * time.Millisecond, Commit: 10 * time.Millisecond}
)

// Profiles are all three, in report order.
func Profiles() []Timings { return []Timings{DefaultProfile, EvNodeProfile, HashicorpProfile} }

// ProfileByName finds a profile; ok is false for an unknown name.
func ProfileByName(name string) (Timings, bool) {
	for _, p := range Profiles() {
		if p.Name == name {
			return p, true
		}
	}
	return Timings{}, false
}

// KillTrial is one SIGKILL of the leader.
type KillTrial struct {
	// Killed and NewLeader name the old and the new leader.
	Killed    string `json:"killed"`
	NewLeader string `json:"newLeader"`
	// LeaderMs is SIGKILL → a survivor reports itself Raft leader.
	LeaderMs float64 `json:"leaderMs"`
	// ProducingMs is SIGKILL → the new leader reports its producer running (our node only).
	ProducingMs float64 `json:"producingMs,omitempty"`
	// FirstCommitMs is SIGKILL → the first block (entry) proposed after the kill is committed and
	// applied on the new leader, as the benchmark sees it.
	FirstCommitMs float64 `json:"firstCommitMs"`
	// Elections is how many terms the cluster went through to settle (1 = one clean election).
	Elections int `json:"elections"`
	// Error is set when the trial did not complete; its figures are not counted.
	Error string `json:"error,omitempty"`
}

// KillResult is a series of SIGKILL trials on one cluster.
type KillResult struct {
	// System is "node" (our sequencer processes) or "floor" (bare hashicorp/raft processes).
	System  string      `json:"system"`
	Timings Timings     `json:"timings"`
	Load    string      `json:"load,omitempty"`
	Trials  []KillTrial `json:"trials"`
	// Leader and FirstCommit summarise the completed trials.
	Leader      Summary `json:"leader"`
	FirstCommit Summary `json:"firstCommit"`
	// Spurious counts elections in the quiet periods between trials, when nobody killed anything.
	Spurious int `json:"spuriousElections"`
	// QuietSeconds is the total length of those quiet periods.
	QuietSeconds float64 `json:"quietSeconds"`
	Failed       int     `json:"failedTrials"`
}

// Finish computes the summaries from the trials.
func (r *KillResult) Finish() {
	var lead, commit []float64
	r.Failed = 0
	for _, t := range r.Trials {
		if t.Error != "" {
			r.Failed++
			continue
		}
		lead = append(lead, t.LeaderMs)
		commit = append(commit, t.FirstCommitMs)
	}
	r.Leader, r.FirstCommit = Summarize(lead), Summarize(commit)
}

// FirstCommits are the completed trials' first-commit times.
func (r *KillResult) FirstCommits() []float64 {
	var out []float64
	for _, t := range r.Trials {
		if t.Error == "" {
			out = append(out, t.FirstCommitMs)
		}
	}
	return out
}

// SwitchTrial is one planned hand-over.
type SwitchTrial struct {
	// Kind is "sigterm" (SIGTERM of the leader process) or "transfer" (POST /raft/transfer-leadership).
	Kind   string `json:"kind"`
	From   string `json:"from"`
	To     string `json:"to"`
	Height uint64 `json:"height"`
	// GapMs is the largest difference between the header times of consecutive blocks around the
	// hand-over (5 blocks before to 10 after).
	GapMs float64 `json:"gapMs"`
	// CommitGapMs is the largest difference between the times consecutive heights were seen committed
	// on a node that stayed up, over the same blocks.
	CommitGapMs float64 `json:"commitGapMs"`
	// HandOverMs is how long the hand-over call took: the SIGTERMed process's life from the signal to
	// its exit, or the transfer API call.
	HandOverMs float64 `json:"handOverMs"`
	// ExitCode is the SIGTERMed process's exit status (sigterm only).
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error,omitempty"`
}

// SwitchResult is a series of hand-overs.
type SwitchResult struct {
	Timings   Timings       `json:"timings"`
	BlockTime time.Duration `json:"blockTime"`
	Load      string        `json:"load"`
	Trials    []SwitchTrial `json:"trials"`
	// Gap, CommitGap and HandOver summarise each kind: keys "sigterm", "transfer" and "all".
	Gap         map[string]Summary `json:"gap"`
	CommitGap   map[string]Summary `json:"commitGap"`
	HandOver    map[string]Summary `json:"handOver"`
	NonZeroExit int                `json:"nonZeroExits"`
	Failed      int                `json:"failedTrials"`
}

// Finish computes the summaries.
func (r *SwitchResult) Finish() {
	gap, cgap, ho := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	r.Failed, r.NonZeroExit = 0, 0
	for _, t := range r.Trials {
		if t.Kind == "sigterm" && t.ExitCode != 0 {
			r.NonZeroExit++
		}
		if t.Error != "" {
			r.Failed++
			continue
		}
		for _, k := range []string{t.Kind, "all"} {
			gap[k] = append(gap[k], t.GapMs)
			cgap[k] = append(cgap[k], t.CommitGapMs)
			ho[k] = append(ho[k], t.HandOverMs)
		}
	}
	r.Gap, r.CommitGap, r.HandOver = map[string]Summary{}, map[string]Summary{}, map[string]Summary{}
	for k := range gap {
		r.Gap[k], r.CommitGap[k], r.HandOver[k] = Summarize(gap[k]), Summarize(cgap[k]), Summarize(ho[k])
	}
}

// Gaps are the completed trials' gaps of one kind ("" for all).
func (r *SwitchResult) Gaps(kind string) []float64 {
	var out []float64
	for _, t := range r.Trials {
		if t.Error == "" && (kind == "" || t.Kind == kind) {
			out = append(out, t.GapMs)
		}
	}
	return out
}
