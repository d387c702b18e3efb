package report

import (
	"fmt"
	"strings"

	"github.com/seqops/sequencer-operator/internal/bench/operatorfootprint"
	"github.com/seqops/sequencer-operator/internal/bench/operatorlive"
)

// OperatorResults are the operator's figures: real node pods on the local control plane (Live) and 100
// clusters of fake node APIs (Footprint). A part that did not run is nil.
type OperatorResults struct {
	Live      *operatorlive.Result      `json:"live,omitempty"`
	Footprint *operatorfootprint.Result `json:"footprint,omitempty"`
}

const (
	targetFreshnessMs  = 1000.0
	targetPromotionMs  = 10000.0
	targetFootprintMiB = float64(operatorfootprint.TargetRSSMiB)
	footprintClusters  = 100
	issueHistoryBlocks = operatorlive.IssueHistoryBlocks
	anchorFreshness    = "etcd-operator requeues every 10 s"
	anchorPromotion    = "etcd-operator promotes learners at 90 %"
)

func msText(ms float64) string {
	if ms >= 10000 {
		return fmt.Sprintf("%.1f s", ms/1000)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// operatorRows are the table's rows for the operator.
func operatorRows(o *OperatorResults) []Row {
	if o == nil || (o.Live == nil && o.Footprint == nil) {
		return []Row{{Figure: "operator figures (issue 6, item 5)", Ours: "not measured by this run (`seqbench operator`, root)"}}
	}
	var rows []Row
	if l := o.Live; l != nil {
		f := l.Failover
		rows = append(rows,
			Row{Figure: "operator: SIGKILL of the leader pod → status.leader names the new leader", Ours: dist(f.StatusLeader) + failedText(f.Failed),
				Target: "p99 ≤ 1 s", Met: yesNo(f.StatusLeader.N > 0 && f.StatusLeader.P99 <= targetFreshnessMs), Anchor: anchorFreshness},
			Row{Figure: "  same, → the leader label on the new leader's pod", Ours: dist(f.Label),
				Target: "p99 ≤ 1 s", Met: yesNo(f.Label.N > 0 && f.Label.P99 <= targetFreshnessMs)},
			Row{Figure: "  of which: SIGKILL → a survivor is Raft leader", Ours: dist(f.RaftLeader)},
			Row{Figure: "  of which: Raft leader → status.leader (the operator's part)", Ours: dist(f.OperatorLag)},
			Row{Figure: "operator: `kubectl apply` of 3 replicas → Healthy, 3 voters", Ours: msText(l.CreateMs)},
			Row{Figure: "operator: scale 3 → 5 → Healthy, 5 voters", Ours: msText(l.ScaleUpMs)},
			Row{Figure: "operator: scale 5 → 3 → Healthy, 3 voters", Ours: msText(l.ScaleDownMs)},
		)
		h := l.History
		met := h.VoterMs > 0 && h.VoterMs <= targetPromotionMs
		metText := yesNo(met)
		if h.HeightAtAdd < issueHistoryBlocks && met {
			metText = fmt.Sprintf("yes, at %d blocks", h.HeightAtAdd)
		}
		rows = append(rows, Row{Figure: fmt.Sprintf("operator: new member with %d blocks of history, replicas 3 → 4 → promoted voter", h.HeightAtAdd),
			Ours: fmt.Sprintf("%s (pod running → voter %s; snapshot installed: %s; history backfilled when promoted: %s; cluster Healthy 4/4 after %s)",
				msText(h.VoterMs), msText(h.RunningToVoterMs), yesNo(h.InstalledSnapshot), yesNo(h.BackfilledAtPromotion), msText(h.HealthyMs)),
			Target: "≤ 10 s with 100k blocks", Met: metText, Anchor: anchorPromotion})
	}
	if fp := o.Footprint; fp != nil {
		met := ""
		if fp.Clusters >= footprintClusters {
			met = yesNo(fp.RSSPeakMiB < targetFootprintMiB)
		}
		heap := ""
		if fp.HeapInuseMiB != nil {
			heap = fmt.Sprintf(", heap in use %.0f MiB", *fp.HeapInuseMiB)
		}
		rows = append(rows,
			Row{Figure: fmt.Sprintf("operator footprint: %d SequencerClusters, %d pods (fake node APIs)", fp.Clusters, fp.Pods),
				Ours: fmt.Sprintf("peak RSS %.1f MiB (steady mean %.1f MiB%s), CPU %.1f %% of a core over %.0f s, %d watch streams",
					fp.RSSPeakMiB, fp.RSSSteadyMiB, heap, fp.CPUSteadyPercent, fp.WindowSeconds, fp.WatchStreams),
				Target: "< 150 MiB with 100 clusters", Met: met},
			Row{Figure: fmt.Sprintf("  all %d clusters created → Healthy", fp.Clusters),
				Ours: fmt.Sprintf("%.1f s (%d of %d Healthy at the end)", fp.HealthySeconds, fp.HealthyAtEnd, fp.Clusters)},
		)
	}
	return rows
}

func failedText(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d trial(s) failed", n)
}

// operatorSection is the report's section on the operator's figures: how they were measured and what the
// run noted.
func operatorSection(o *OperatorResults) string {
	var b strings.Builder
	b.WriteString("## Operator figures (issue 6, item 5)\n\n")
	if o == nil || (o.Live == nil && o.Footprint == nil) {
		b.WriteString("Not measured by this run: `seqbench operator` (part of `make bench`) needs root and the built control plane.\n")
		return b.String()
	}
	b.WriteString(operatorMethod)
	if l := o.Live; l != nil {
		fmt.Fprintf(&b, "\nThis run: control plane up in %.1f s, operator installed in %.1f s; %d CPUs shared by the control plane, operator and node pods; "+
			"blockTime %s, leaderLeaseTimeout %s. History built at %s blocks in %.0f s (%.0f blocks/s).\n",
			l.Setup.ControlPlaneSeconds, l.Setup.OperatorInstallSeconds, l.Setup.CPUs, l.Setup.BlockTime, l.Setup.LeaderLeaseTimeout,
			l.History.BuildBlockTime, l.History.BuildSeconds, l.History.BuildBlocksPerSecond)
		for _, n := range l.Notes {
			fmt.Fprintf(&b, "* %s\n", n)
		}
	}
	if fp := o.Footprint; fp != nil {
		fmt.Fprintf(&b, "\nFootprint pods: %s.\n", fp.FakePods)
		if fp.Reconciles != nil && fp.ReconcilesPerSecond != nil {
			fmt.Fprintf(&b, "In the %.0f s window the operator ran %.0f reconciles (%.1f/s) and the fake nodes served %d requests.\n",
				fp.WindowSeconds, *fp.Reconciles, *fp.ReconcilesPerSecond, fp.NodeAPIRequests)
		}
	}
	return b.String()
}

const operatorMethod = `**Live** (` + "`seqbench operator`" + `, internal/bench/operatorlive). The local control plane
(internal/localcluster: kube-apiserver, controller-manager, scheduler and etcd built from source, the process
kubelet), the operator installed from charts/sequencer-operator with Helm, and SequencerClusters of real
` + "`node`" + ` pods. Object changes are timed from informer events, Raft leadership from the nodes' ` + "`/raft/watch`" + `
streams. **Status freshness**: SIGKILL of the leader pod's process (t0 just before the signal) → the first
SequencerCluster whose status.leader names the new Raft leader, and → the first pod event with the leader
label on it; then wait for the killed pod to return and the cluster to be Healthy. **Create**: ` + "`kubectl apply`" + `
→ phase Healthy with 3 ready voters. **Scale**: the spec.replicas patch → Healthy with the new number of ready
voters. **New member**: a 3-replica cluster builds its history at a short block time (spec.extraArgs
` + "`--block-time`" + `, since the CRD refuses less than 10 ms), returns to 100 ms blocks (a rolling update), then
spec.replicas 3 → 4; the time to "promoted voter" is the patch → status.members lists the new pod as a Voter.

**Footprint** (internal/bench/operatorfootprint). The real manager binary as a host process against the local
control plane, managing N SequencerClusters of 3 pods whose nodes are fakes (three hundred real node
processes do not fit the local cluster's one /24 pod network); RSS from /proc (VmRSS sampled every second,
VmHWM for the peak), CPU from utime+stime over a steady window after every cluster is Healthy.
`
