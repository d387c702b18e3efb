package commitpath

import (
	"bufio"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseHistSumsAndWindows(t *testing.T) {
	metrics := `# TYPE sequencer_block_commit_latency_seconds histogram
sequencer_block_commit_latency_seconds_bucket{le="0.005"} 3
sequencer_block_commit_latency_seconds_bucket{le="0.01"} 9
sequencer_block_commit_latency_seconds_bucket{le="+Inf"} 10
sequencer_block_commit_latency_seconds_sum 0.1
`
	a, err := parseHist(200, strings.NewReader(metrics))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := histFromLines(bufio.NewScanner(strings.NewReader(metrics)))
	sum := addBuckets(addBuckets(nil, a), b)
	want := []Bucket{{0.005, 6}, {0.01, 18}, {math.Inf(1), 20}}
	if len(sum) != len(want) {
		t.Fatalf("got %v, want %v", sum, want)
	}
	for i := range want {
		if sum[i] != want[i] {
			t.Fatalf("bucket %d: got %v, want %v", i, sum[i], want[i])
		}
	}
	if _, err := parseHist(500, strings.NewReader(metrics)); err == nil {
		t.Fatal("a 500 answer was parsed")
	}
	if _, err := parseHist(200, strings.NewReader("other_metric 1\n")); err == nil {
		t.Fatal("an answer without the histogram was parsed")
	}

	t0 := time.Unix(1000, 0)
	blocks := []blockSeen{
		{height: 3, visible: t0.Add(2 * time.Second)},
		{height: 1, visible: t0.Add(-time.Millisecond)},
		{height: 2, visible: t0},
		{height: 4, visible: t0.Add(3 * time.Second)},
	}
	got := inWindow(blocks, t0, t0.Add(3*time.Second))
	if len(got) != 2 || got[0].height != 2 || got[1].height != 3 {
		t.Fatalf("window holds %v, want heights 2 and 3", got)
	}
}
