package failover

import (
	"testing"
	"time"
)

func TestNextBlockTime(t *testing.T) {
	now := time.Unix(1000, 0)
	bt := 100 * time.Millisecond
	cases := []struct {
		name string
		last time.Time
		want time.Time
	}{
		{"empty chain produces now", time.Time{}, now},
		{"due one block time after the last block", now.Add(-30 * time.Millisecond), now.Add(70 * time.Millisecond)},
		{"overdue produces now, not after a fresh timer", now.Add(-time.Second), now},
		{"exactly due", now.Add(-bt), now},
		{"last block in the future (clock step) waits for it", now.Add(50 * time.Millisecond), now.Add(150 * time.Millisecond)},
	}
	for _, tc := range cases {
		if got := nextBlockTime(tc.last, bt, now); !got.Equal(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got.Sub(now), tc.want.Sub(now))
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.BlockTime != 100*time.Millisecond || c.ApplyTimeout != time.Second || c.UnhealthyAfter != 10 {
		t.Fatalf("defaults: %+v", c)
	}
	fast := Config{BlockTime: 500 * time.Millisecond}.withDefaults()
	if fast.ApplyTimeout != 5*time.Second {
		t.Fatalf("apply timeout should scale with the block time: %v", fast.ApplyTimeout)
	}
}
