package report

import (
	"strings"
	"testing"

	"github.com/seqops/sequencer-operator/internal/bench/operatorfootprint"
	"github.com/seqops/sequencer-operator/internal/bench/operatorlive"
	"github.com/seqops/sequencer-operator/internal/bench/stats"
)

func TestOperatorRowsJudgeTheTargets(t *testing.T) {
	live := func(p99 float64, height uint64, voterMs float64) *operatorlive.Result {
		return &operatorlive.Result{
			Failover: operatorlive.FailoverResult{StatusLeader: stats.Summary{N: 30, P50: 300, P99: p99}, Label: stats.Summary{N: 30, P50: 280, P99: p99}},
			History:  operatorlive.HistoryResult{HeightAtAdd: height, VoterMs: voterMs},
		}
	}
	met := func(rows []Row, figure string) string {
		for _, r := range rows {
			if strings.Contains(r.Figure, figure) {
				return r.Met
			}
		}
		t.Fatalf("no row %q in %v", figure, rows)
		return ""
	}
	cases := []struct {
		name                           string
		in                             *OperatorResults
		freshness, promotion, footprnt string
	}{
		{"all met at the issue's sizes", &OperatorResults{Live: live(800, 100000, 6000), Footprint: &operatorfootprint.Result{Clusters: 100, RSSPeakMiB: 120}},
			"yes", "yes", "yes"},
		{"stale status, slow promotion, heavy operator", &OperatorResults{Live: live(1500, 100000, 12000), Footprint: &operatorfootprint.Result{Clusters: 100, RSSPeakMiB: 160}},
			"no", "no", "no"},
		{"a small history or few clusters is not claimed as the target", &OperatorResults{Live: live(800, 2000, 6000), Footprint: &operatorfootprint.Result{Clusters: 10, RSSPeakMiB: 50}},
			"yes", "yes, at 2000 blocks", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows := operatorRows(c.in)
			if got := met(rows, "status.leader names"); got != c.freshness {
				t.Errorf("freshness met %q, want %q", got, c.freshness)
			}
			if got := met(rows, "promoted voter"); got != c.promotion {
				t.Errorf("promotion met %q, want %q", got, c.promotion)
			}
			if got := met(rows, "operator footprint"); got != c.footprnt {
				t.Errorf("footprint met %q, want %q", got, c.footprnt)
			}
		})
	}
	if rows := operatorRows(nil); len(rows) != 1 || !strings.Contains(rows[0].Ours, "not measured") {
		t.Errorf("no operator results: %v", rows)
	}
}
