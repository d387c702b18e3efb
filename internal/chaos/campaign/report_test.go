package campaign

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/seqops/sequencer-operator/internal/chaos/checker"
	"github.com/seqops/sequencer-operator/internal/chaos/schedule"
)

func sampleReport() *Report {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := &Report{Seed: 99, Nodes: 3, Planned: 2, Injected: 2, ResumeBound: 2 * time.Second,
		ByKind: map[schedule.Kind]int{schedule.KillLeader: 1, schedule.QuorumLoss: 1},
		Faults: []FaultResult{
			{Fault: schedule.Fault{Index: 1, Kind: schedule.KillLeader}, Target: "node-0", At: t0, Healed: t0.Add(time.Second), Recovered: t0.Add(2 * time.Second)},
			{Fault: schedule.Fault{Index: 2, Kind: schedule.QuorumLoss}, Target: "[node-1 node-2]", At: t0.Add(5 * time.Second), Healed: t0.Add(7 * time.Second), Recovered: t0.Add(8 * time.Second)},
		},
	}
	r.setResumes([]checker.Resume{
		{Index: 1, Kind: "kill-leader", Resume: 300 * time.Millisecond, Stall: 400 * time.Millisecond, Checked: true},
		{Index: 2, Kind: "quorum-loss", Resume: 5 * time.Second, Stall: 9 * time.Second},
	})
	return r
}

func TestReportWorstOnlyCountsFaultsThatLeftAQuorum(t *testing.T) {
	r := sampleReport()
	if r.WorstResume != 300*time.Millisecond || r.WorstResumeFault != 1 || r.WorstStall != 400*time.Millisecond {
		t.Fatalf("worst resume %v (#%d), stall %v", r.WorstResume, r.WorstResumeFault, r.WorstStall)
	}
	if !r.Passed() {
		t.Fatal("a clean report did not pass")
	}
	r.Violations = append(r.Violations, checker.Violation{Check: "fork", Detail: "height 3"})
	if r.Passed() {
		t.Fatal("a report with a violation passed")
	}
	r.Violations = nil
	r.Injected = 1
	if r.Passed() {
		t.Fatal("a report with a fault not injected passed")
	}
}

func TestReportOutputsNameTheSeed(t *testing.T) {
	r := sampleReport()
	r.Violations = []checker.Violation{{Check: "tx", Detail: "w1-2 included twice"}}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"seed 99, FAILED", "--seed 99 --faults 2 --nodes 3", "| kill-leader | 1 | 300ms |", "* tx: w1-2 included twice", "| 2 | quorum-loss | [node-1 node-2] |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	s := r.Summary()
	if !strings.HasPrefix(s, "FAIL: seed 99") || !strings.Contains(s, "replay: seqchaos --seed 99") {
		t.Errorf("summary: %s", s)
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Seed != 99 || len(back.Faults) != 2 {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}
