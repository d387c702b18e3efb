package schedule

import (
	"reflect"
	"testing"
	"time"
)

func TestPlanIsAFunctionOfTheSeed(t *testing.T) {
	a, err := Plan(42, 150, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Plan(42, 150, 3)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave two plans")
	}
	c, _ := Plan(43, 150, 3)
	if reflect.DeepEqual(a, c) {
		t.Fatal("two seeds gave the same plan")
	}
	// A shorter run of the same seed is a prefix of the longer one, so a CI failure replays in a
	// full run.
	short, _ := Plan(42, 20, 3)
	if !reflect.DeepEqual(short, a[:20]) {
		t.Fatal("the plan of 20 faults is not the start of the plan of 150")
	}
}

func TestPlanCoversEveryKindAndStaysInBounds(t *testing.T) {
	for _, tt := range []struct {
		seed  int64
		n     int
		nodes int
	}{
		{1, 10, 3}, {2, 20, 3}, {3, 100, 3}, {4, 100, 5}, {5, 10, 5}, {-7, 300, 7},
	} {
		plan, err := Plan(tt.seed, tt.n, tt.nodes)
		if err != nil {
			t.Fatal(err)
		}
		if len(plan) != tt.n {
			t.Fatalf("%d faults, want %d", len(plan), tt.n)
		}
		seen := map[Kind]int{}
		for i, f := range plan {
			seen[f.Kind]++
			if f.Index != i+1 {
				t.Fatalf("fault %d has index %d", i, f.Index)
			}
			if f.Follower < 0 || f.Follower >= tt.nodes-1 {
				t.Fatalf("%v: follower %d out of range", f, f.Follower)
			}
			if f.Hold < 0 || f.Hold > 4*time.Second || f.Quiet < 200*time.Millisecond || f.Quiet >= time.Second {
				t.Fatalf("%v: hold %v quiet %v out of bounds", f, f.Hold, f.Quiet)
			}
			switch f.Kind {
			case SplitLeaderMinority, SplitLeaderMajority:
				if f.Minority < 1 || 2*f.Minority >= tt.nodes {
					t.Fatalf("%v: minority %d of %d is not a minority", f, f.Minority, tt.nodes)
				}
			case Flap:
				if f.FlapPeriod < 150*time.Millisecond || f.Hold < 2*time.Second {
					t.Fatalf("%v: flap period %v", f, f.FlapPeriod)
				}
			}
			if f.String() == "" {
				t.Fatal("empty description")
			}
		}
		if tt.n >= len(Kinds) && len(seen) != len(Kinds) {
			t.Fatalf("seed %d: %d faults cover %d of %d kinds: %v", tt.seed, tt.n, len(seen), len(Kinds), seen)
		}
	}
}

func TestPlanRefusesBadInput(t *testing.T) {
	for _, tt := range []struct{ n, nodes int }{{-1, 3}, {10, 2}, {10, 4}, {10, 1}, {200_000, 3}} {
		if _, err := Plan(1, tt.n, tt.nodes); err == nil {
			t.Errorf("Plan(n=%d, nodes=%d) accepted", tt.n, tt.nodes)
		}
	}
}

func TestOnlyQuorumLossLosesTheQuorum(t *testing.T) {
	for _, k := range Kinds {
		if got := k.LeavesQuorum(); got != (k != QuorumLoss) {
			t.Errorf("%s.LeavesQuorum() = %v", k, got)
		}
		if weights[k] <= 0 {
			t.Errorf("%s has no weight", k)
		}
	}
}
