package sequencer

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	sraft "github.com/seqops/sequencer-operator/pkg/raft"
)

func TestDecideBootstrap(t *testing.T) {
	cases := []struct {
		requested, hasState bool
		state               string
		want                bool
	}{
		{requested: true, hasState: false, state: ClusterStateNew, want: true},
		{requested: true, hasState: true, state: ClusterStateNew, want: false},
		// A wiped first member of an existing cluster must not found a second cluster.
		{requested: true, hasState: false, state: ClusterStateExisting, want: false},
		{requested: true, hasState: true, state: ClusterStateExisting, want: false},
		{requested: false, hasState: false, state: ClusterStateNew, want: false},
		{requested: false, hasState: true, state: ClusterStateExisting, want: false},
	}
	for _, tc := range cases {
		got := DecideBootstrap(tc.requested, tc.hasState, tc.state)
		if got.Bootstrap != tc.want || got.Reason == "" {
			t.Errorf("DecideBootstrap(requested=%v, hasState=%v, %q) = %+v, want bootstrap=%v with a reason", tc.requested, tc.hasState, tc.state, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	good := Config{ID: "a", ChainID: "c", DataDir: "/tmp/x", RaftAdvertise: "a:7000", HTTPAddr: ":8080", SigningKey: key}.withDefaults()
	if err := good.Validate(); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no id", func(c *Config) { c.ID = "" }, "--id"},
		{"no chain id", func(c *Config) { c.ChainID = "" }, "--chain-id"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{"no key", func(c *Config) { c.SigningKey = nil }, "--signing-key-file"},
		{"bad cluster state", func(c *Config) { c.InitialClusterState = "old" }, "--initial-cluster-state"},
		{"advertise without port", func(c *Config) { c.RaftAdvertise = "a" }, "--raft-advertise"},
		{"http without fixed port", func(c *Config) { c.HTTPAddr = "127.0.0.1:0" }, "fixed port"},
		{"election below heartbeat", func(c *Config) {
			c.Timings = sraft.Timings{Heartbeat: time.Second, Election: 100 * time.Millisecond, LeaderLease: 50 * time.Millisecond, Commit: time.Millisecond}
		}, "election timeout"},
		{"lease above heartbeat", func(c *Config) {
			c.Timings = sraft.Timings{Heartbeat: 100 * time.Millisecond, Election: time.Second, LeaderLease: time.Second, Commit: time.Millisecond}
		}, "leader lease"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error naming %q, got %v", tc.want, err)
			}
		})
	}
}
