package report

import (
	"testing"

	"github.com/seqops/sequencer-operator/internal/bench/encoding"
	"github.com/seqops/sequencer-operator/internal/bench/stats"
)

func TestMergeReplacesWhatTheLaterRunMeasured(t *testing.T) {
	kill := func(profile string, n int) stats.KillResult {
		return stats.KillResult{Timings: stats.Timings{Name: profile}, Trials: make([]stats.KillTrial, n)}
	}
	first := &Results{Mode: "full", Command: "seqbench all --full",
		Failover: []stats.KillResult{kill("default", 30), kill("ev-node", 30)},
		Encoding: &encoding.Result{}, Errors: []string{"a"}}
	second := &Results{Mode: "full", Command: "seqbench failover --profiles default",
		Failover: []stats.KillResult{kill("default", 5), kill("hashicorp", 5)}, Errors: []string{"b"}}
	first.Merge(second)

	got := map[string]int{}
	for _, f := range first.Failover {
		got[f.Timings.Name] = len(f.Trials)
	}
	want := map[string]int{"default": 5, "ev-node": 30, "hashicorp": 5}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("failover %s: %d trials, want %d (merged: %v)", k, got[k], v, got)
		}
	}
	if len(first.Failover) != 3 {
		t.Errorf("merged %d failover series, want 3", len(first.Failover))
	}
	if first.Encoding == nil {
		t.Error("a section the later run did not measure was dropped")
	}
	if first.Mode != "full" || first.Command != "seqbench all --full; seqbench failover --profiles default" {
		t.Errorf("mode %q, command %q", first.Mode, first.Command)
	}
	if len(first.Errors) != 2 {
		t.Errorf("errors %v, want both runs'", first.Errors)
	}
}
