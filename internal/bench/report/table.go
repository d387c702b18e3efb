package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/seqops/sequencer-operator/internal/bench/commitpath"
	"github.com/seqops/sequencer-operator/internal/bench/stats"
)

// Row is one figure of the table.
type Row struct {
	Figure string
	Ours   string
	Target string
	// Met is "yes", "no" or "" when the figure has no target.
	Met    string
	Anchor string
}

// TableRows is the table of a run.
type TableRows []Row

// Anchors of DESIGN.md §7, printed beside our figures.
const (
	anchorEvNode       = "ev-node at 92/368/46 ms: p50 320, p90 379, max 1,321 ms"
	anchorEvNodeDefIt  = "ev-node at its defaults 350/1000/175 ms: p50 895, max 1,153 ms"
	anchorFloor        = "bare hashicorp/raft at 92/368/46 ms: p50 215, p90 317, max 333 ms"
	anchorSigterm      = "ev-node: 2 × block time (200 ms at 100 ms blocks), old leader exits 1"
	anchorTransfer     = "bare hashicorp/raft LeadershipTransfer ≈ 4 ms"
	switchoverSlack    = 20 * time.Millisecond
	targetFailoverP50  = 250.0
	targetFailoverP99  = 400.0
	targetFloorRatio   = 1.2
	targetCommitP99Ms  = 10.0
	targetThroughput   = 50000.0
	targetEncodeFactor = 3.0
)

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func dist(s stats.Summary) string {
	if s.N == 0 {
		return "no data"
	}
	return fmt.Sprintf("min %.0f / p50 %.0f / p90 %.0f / p99 %.0f / max %.0f ms (n=%d)", s.Min, s.P50, s.P90, s.P99, s.Max, s.N)
}

func floorFor(r *Results, name string) *stats.KillResult {
	for i := range r.Floor {
		if r.Floor[i].Timings.Name == name {
			return &r.Floor[i]
		}
	}
	return nil
}

// Table builds the rows of a run.
func Table(r *Results) TableRows {
	var rows TableRows
	for _, f := range r.Failover {
		name := f.Timings.Name + " " + f.Timings.Label()
		row := Row{Figure: "failover: SIGKILL leader → new leader's first block committed, " + name, Ours: dist(f.FirstCommit)}
		switch f.Timings.Name {
		case "default":
			row.Target = "p50 ≤ 250 ms, p99 ≤ 400 ms"
			row.Met = yesNo(f.FirstCommit.N > 0 && f.FirstCommit.P50 <= targetFailoverP50 && f.FirstCommit.P99 <= targetFailoverP99 && f.Failed == 0)
			row.Anchor = anchorEvNode
		case "ev-node":
			row.Anchor = anchorEvNode
		case "hashicorp":
			row.Anchor = anchorEvNodeDefIt
		}
		if f.Failed > 0 {
			row.Ours += fmt.Sprintf("; %d trials failed", f.Failed)
		}
		rows = append(rows, row)
		rows = append(rows, Row{Figure: "  of which: SIGKILL → a survivor is Raft leader, " + name, Ours: dist(f.Leader)})
		if fl := floorFor(r, f.Timings.Name); fl != nil {
			fr := Row{Figure: "  floor: bare hashicorp/raft, SIGKILL → first commit, " + name, Ours: dist(fl.FirstCommit)}
			if f.Timings.Name == "ev-node" {
				fr.Anchor = anchorFloor
			}
			if fl.Failed > 0 {
				fr.Ours += fmt.Sprintf("; %d trials failed", fl.Failed)
			}
			rows = append(rows, fr)
			if fl.FirstCommit.N > 0 && f.FirstCommit.N > 0 {
				ratio := Row{Figure: "  ours ÷ floor, " + name,
					Ours: fmt.Sprintf("p50 %.2f×, p90 %.2f×, p99 %.2f×", f.FirstCommit.P50/fl.FirstCommit.P50, f.FirstCommit.P90/fl.FirstCommit.P90, f.FirstCommit.P99/fl.FirstCommit.P99)}
				if f.Timings.Name == "default" {
					ratio.Target = "≤ 1.2× (p99)"
					ratio.Met = yesNo(f.FirstCommit.P99 <= targetFloorRatio*fl.FirstCommit.P99)
				}
				rows = append(rows, ratio)
			}
		}
		extra := 0
		for _, t := range f.Trials {
			if t.Error == "" && t.Elections > 1 {
				extra += t.Elections - 1
			}
		}
		sp := Row{Figure: "  spurious elections, " + name,
			Ours:   fmt.Sprintf("%d in %.0f s of quiet load; %d extra terms during the %d failovers", f.Spurious, f.QuietSeconds, extra, f.FirstCommit.N),
			Target: "0 under load", Met: yesNo(f.Spurious == 0)}
		rows = append(rows, sp)
	}
	if s := r.Switchover; s != nil {
		limit := stats.Ms(s.BlockTime + switchoverSlack)
		for _, kind := range []string{"sigterm", "transfer"} {
			g := s.Gap[kind]
			label := map[string]string{"sigterm": "SIGTERM of the leader", "transfer": "API transfer-leadership"}[kind]
			row := Row{Figure: "switchover (" + label + "): largest gap between consecutive blocks",
				Ours: dist(g), Target: fmt.Sprintf("≤ block time + 20 ms = %.0f ms", limit), Met: yesNo(g.N > 0 && g.Max <= limit)}
			if kind == "sigterm" {
				row.Anchor = anchorSigterm
			}
			rows = append(rows, row)
			rows = append(rows, Row{Figure: "  same, gap between commits seen on a surviving node", Ours: dist(s.CommitGap[kind])})
			ho := s.HandOver[kind]
			hr := Row{Figure: "  hand-over: " + map[string]string{"sigterm": "SIGTERM → old leader's process exited", "transfer": "transfer API call"}[kind], Ours: dist(ho)}
			if kind == "transfer" {
				hr.Anchor = anchorTransfer
			}
			rows = append(rows, hr)
		}
		n := 0
		for _, t := range s.Trials {
			if t.Kind == "sigterm" {
				n++
			}
		}
		rows = append(rows, Row{Figure: "  SIGTERM exit status", Ours: fmt.Sprintf("%d of %d exited 0", n-s.NonZeroExit, n), Target: "exit 0", Met: yesNo(s.NonZeroExit == 0 && n > 0), Anchor: "ev-node exits 1"})
	}
	for _, l := range r.CommitLatency {
		row := Row{Figure: fmt.Sprintf("commit latency (proposal → commit, leader), %v blocks of %d tx", l.BlockTime, l.TxsPerBlock),
			Ours: latencyText(l.Proposal) + fmt.Sprintf("; build → committed p50 %.1f / p99 %.1f ms", l.BuildToVisible.P50, l.BuildToVisible.P99) + electionsText(l.Elections)}
		if l.BlockTime == 100*time.Millisecond && l.TxsPerBlock == 1000 {
			row.Target, row.Anchor = "p99 ≤ 10 ms", "hashicorp/raft, etcd"
			row.Met = yesNo(l.Proposal.Count > 0 && l.Proposal.P99Ms <= targetCommitP99Ms)
		}
		rows = append(rows, row)
	}
	if best := bestThroughput(r.Throughput); best != nil {
		row := Row{Figure: "sustained throughput, 3 nodes, fsync on, 100-byte tx",
			Ours:   fmt.Sprintf("%.0f tx/s (blocks of up to %d tx every %v; mean %.0f tx/block, one per %.0f ms)", best.TxPerSecond, best.MaxTxsPerBlock, best.BlockTime, best.MeanTxs, best.MeanIntervalMs) + electionsText(best.Elections),
			Target: "≥ 50,000 tx/s", Met: yesNo(best.TxPerSecond >= targetThroughput)}
		rows = append(rows, row)
		if r.Fsync != nil && r.Fsync.PerSec > 0 {
			rows = append(rows, Row{Figure: "  as a ratio to the disk's fsync rate",
				Ours: fmt.Sprintf("%.1f tx per fsync (disk: %.0f fdatasync/s of 4 KiB, p50 %.2f ms)", best.TxPerSecond/r.Fsync.PerSec, r.Fsync.PerSec, r.Fsync.Latency.P50)})
		}
		if best.NodeCPUMsPer1000Tx > 0 {
			rows = append(rows, Row{Figure: "  CPU of the three node processes (with their load generators)",
				Ours: fmt.Sprintf("%.0f ms per 1,000 tx; %.2f cores busy (machine: %d cores)", best.NodeCPUMsPer1000Tx, best.NodeCPUCores, r.Machine.Cores)})
		}
	} else if r.Fsync != nil {
		rows = append(rows, Row{Figure: "disk fsync rate", Ours: fmt.Sprintf("%.0f fdatasync/s of 4 KiB", r.Fsync.PerSec)})
	}
	if e := r.Encoding; e != nil && len(e.Benches) == 4 {
		for _, op := range []string{"Encode", "Decode"} {
			pb, js := e.Benches[op+"BlockProto"], e.Benches[op+"BlockJSON"]
			factor := js.NsPerOp / pb.NsPerOp
			rows = append(rows, Row{Figure: strings.ToLower(op) + " of a 1,000-tx block: protobuf vs JSON",
				Ours:   fmt.Sprintf("%.0f µs, %.0f allocs vs %.0f µs, %.0f allocs: %.1f× faster", pb.NsPerOp/1000, pb.AllocsPerOp, js.NsPerOp/1000, js.AllocsPerOp, factor),
				Target: "≥ 3×", Met: yesNo(factor >= targetEncodeFactor), Anchor: "ev-node's review: JSON was the critical bottleneck"})
		}
	}
	rows = append(rows, operatorRows(r.Operator)...)
	return rows
}

func electionsText(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d election(s) during the window", n)
}

func latencyText(h commitpath.HistSummary) string {
	if h.Count == 0 {
		return "no proposals"
	}
	bound := fmt.Sprintf("≤ %.1f", h.P99BoundMs)
	if h.P99BoundMs < 0 {
		bound = "> 2500"
	}
	return fmt.Sprintf("p50 %.1f / p99 %.1f ms (bucket %s ms), %.1f%% ≤ 10 ms, n=%d", h.P50Ms, h.P99Ms, bound, 100*h.Within10ms, h.Count)
}

func bestThroughput(ts []commitpath.ThroughputResult) *commitpath.ThroughputResult {
	var best *commitpath.ThroughputResult
	for i := range ts {
		if best == nil || ts[i].TxPerSecond > best.TxPerSecond {
			best = &ts[i]
		}
	}
	return best
}

// Text renders the table for a terminal.
func (t TableRows) Text() string {
	head := Row{Figure: "figure", Ours: "ours", Target: "target", Met: "met", Anchor: "anchor"}
	all := append(TableRows{head}, t...)
	w := [5]int{}
	for _, r := range all {
		for i, c := range []string{r.Figure, r.Ours, r.Target, r.Met, r.Anchor} {
			w[i] = max(w[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for i, r := range all {
		cells := []string{r.Figure, r.Ours, r.Target, r.Met, r.Anchor}
		for j, c := range cells {
			b.WriteString(c)
			if j < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", w[j]-len([]rune(c))+2))
			}
		}
		b.WriteString("\n")
		if i == 0 {
			b.WriteString(strings.Repeat("-", w[0]+w[1]+w[2]+w[3]+w[4]+8) + "\n")
		}
	}
	return b.String()
}

// Markdown renders the table as GitHub markdown.
func (t TableRows) Markdown() string {
	var b strings.Builder
	b.WriteString("| figure | ours | target | met | anchor |\n|---|---|---|---|---|\n")
	esc := func(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
	for _, r := range t {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", esc(strings.TrimSpace(r.Figure)), esc(r.Ours), esc(r.Target), r.Met, esc(r.Anchor))
	}
	return b.String()
}
