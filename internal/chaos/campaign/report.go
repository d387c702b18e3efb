package campaign

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/seqops/sequencer-operator/internal/chaos/checker"
	"github.com/seqops/sequencer-operator/internal/chaos/load"
	"github.com/seqops/sequencer-operator/internal/chaos/schedule"
)

// FaultResult is one fault as it ran.
type FaultResult struct {
	Fault     schedule.Fault `json:"fault"`
	Target    string         `json:"target"`
	At        time.Time      `json:"at"`
	Healed    time.Time      `json:"healed"`
	Recovered time.Time      `json:"recovered"`
	Resume    time.Duration  `json:"resume"`
	Stall     time.Duration  `json:"stall"`
	Checked   bool           `json:"checked"`
	Err       string         `json:"err,omitempty"`
}

// Report is a campaign's outcome.
type Report struct {
	Seed         int64                 `json:"seed"`
	Nodes        int                   `json:"nodes"`
	Planned      int                   `json:"planned"`
	Injected     int                   `json:"injected"`
	ByKind       map[schedule.Kind]int `json:"byKind"`
	Blocks       uint64                `json:"blocks"`
	Load         load.Counts           `json:"load"`
	Tx           checker.TxStats       `json:"tx"`
	Observations int                   `json:"observations"`
	ResumeBound  time.Duration         `json:"resumeBound"`
	// WorstResume is the longest resume of a fault that left a quorum.
	WorstResume      time.Duration       `json:"worstResume"`
	WorstResumeFault int                 `json:"worstResumeFault"`
	WorstStall       time.Duration       `json:"worstStall"`
	WorstStallFault  int                 `json:"worstStallFault"`
	Faults           []FaultResult       `json:"faults"`
	Violations       []checker.Violation `json:"violations"`
	Duration         time.Duration       `json:"duration"`
}

// Passed is true when every planned fault ran and nothing was violated.
func (r *Report) Passed() bool { return len(r.Violations) == 0 && r.Injected == r.Planned }

func (r *Report) setResumes(rs []checker.Resume) {
	byIndex := map[int]checker.Resume{}
	for _, x := range rs {
		byIndex[x.Index] = x
	}
	for i := range r.Faults {
		x, ok := byIndex[r.Faults[i].Fault.Index]
		if !ok {
			continue
		}
		r.Faults[i].Resume, r.Faults[i].Stall, r.Faults[i].Checked = x.Resume, x.Stall, x.Checked
		if !x.Checked {
			continue
		}
		if x.Resume > r.WorstResume {
			r.WorstResume, r.WorstResumeFault = x.Resume, x.Index
		}
		if x.Stall > r.WorstStall {
			r.WorstStall, r.WorstStallFault = x.Stall, x.Index
		}
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Summary is the short text printed at the end of a run.
func (r *Report) Summary() string {
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: seed %d, %d nodes, %d/%d faults (%s), %d blocks, %d acked transactions, %d violations, worst resume %v (fault #%d, bound %v), worst stall %v (fault #%d)\n",
		verdict, r.Seed, r.Nodes, r.Injected, r.Planned, r.kinds(), r.Blocks, r.Tx.Acked, len(r.Violations),
		r.WorstResume.Round(time.Millisecond), r.WorstResumeFault, r.ResumeBound, r.WorstStall.Round(time.Millisecond), r.WorstStallFault)
	for i, v := range r.Violations {
		if i == 20 {
			fmt.Fprintf(&b, "  … %d more\n", len(r.Violations)-20)
			break
		}
		fmt.Fprintf(&b, "  violation: %s\n", v)
	}
	fmt.Fprintf(&b, "replay: seqchaos --seed %d --faults %d --nodes %d\n", r.Seed, r.Planned, r.Nodes)
	return b.String()
}

func (r *Report) kinds() string {
	var parts []string
	for _, k := range schedule.Kinds {
		if n := r.ByKind[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	return strings.Join(parts, ", ")
}

// WriteMarkdown writes the report as a markdown document.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	verdict := "passed"
	if !r.Passed() {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "# Fault campaign: seed %d, %s\n\n", r.Seed, verdict)
	fmt.Fprintf(&b, "Replay: `seqchaos --seed %d --faults %d --nodes %d` (`make chaos CHAOS_SEED=%d CHAOS_FAULTS=%d CHAOS_NODES=%d`).\n\n", r.Seed, r.Planned, r.Nodes, r.Seed, r.Planned, r.Nodes)
	fmt.Fprintf(&b, "| what | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| nodes | %d |\n| faults injected | %d of %d planned |\n| blocks | %d |\n", r.Nodes, r.Injected, r.Planned, r.Blocks)
	fmt.Fprintf(&b, "| transactions submitted / attempts | %d / %d |\n", r.Tx.Submitted, r.Tx.Attempts)
	fmt.Fprintf(&b, "| acknowledged transactions | %d (all included exactly once: %v) |\n", r.Tx.Acked, !hasCheck(r.Violations, "tx"))
	fmt.Fprintf(&b, "| included but never acknowledged | %d |\n", r.Tx.IncludedUnacked)
	fmt.Fprintf(&b, "| heads observed during the run | %d |\n", r.Observations)
	fmt.Fprintf(&b, "| violations | %d |\n", len(r.Violations))
	fmt.Fprintf(&b, "| worst resume (fault → first later block, faults leaving a quorum) | %v (fault #%d), bound %v |\n", r.WorstResume.Round(time.Millisecond), r.WorstResumeFault, r.ResumeBound)
	fmt.Fprintf(&b, "| worst stall (longest block gap until the next fault) | %v (fault #%d) |\n", r.WorstStall.Round(time.Millisecond), r.WorstStallFault)
	fmt.Fprintf(&b, "| duration | %v |\n\n", r.Duration.Round(time.Second))

	fmt.Fprintf(&b, "## Faults by kind\n\n| kind | count | worst resume | median resume |\n|---|---|---|---|\n")
	for _, k := range schedule.Kinds {
		var rs []time.Duration
		for _, f := range r.Faults {
			if f.Fault.Kind == k && !f.At.IsZero() {
				rs = append(rs, f.Resume)
			}
		}
		if len(rs) == 0 {
			continue
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i] < rs[j] })
		note := ""
		if !k.LeavesQuorum() {
			note = " (from the heal; no quorum during the fault)"
		}
		fmt.Fprintf(&b, "| %s | %d | %v%s | %v |\n", k, r.ByKind[k], rs[len(rs)-1].Round(time.Millisecond), note, rs[len(rs)/2].Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "\n## Violations\n\n")
	if len(r.Violations) == 0 {
		fmt.Fprintf(&b, "None.\n")
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "* %s\n", v)
	}
	fmt.Fprintf(&b, "\n## Faults\n\n| # | kind | target | hold | resume | stall | recovered after heal |\n|---|---|---|---|---|---|---|\n")
	for _, f := range r.Faults {
		rec := "—"
		if !f.Recovered.IsZero() && !f.Healed.IsZero() {
			rec = f.Recovered.Sub(f.Healed).Round(time.Millisecond).String()
		}
		if f.Err != "" {
			rec = "error: " + f.Err
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %v | %v | %v | %s |\n", f.Fault.Index, f.Fault.Kind, f.Target, f.Fault.Hold, f.Resume.Round(time.Millisecond), f.Stall.Round(time.Millisecond), rec)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func hasCheck(vs []checker.Violation, check string) bool {
	for _, v := range vs {
		if v.Check == check {
			return true
		}
	}
	return false
}
