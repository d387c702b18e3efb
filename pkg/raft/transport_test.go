package raft

import (
	"errors"
	"testing"

	hraft "github.com/hashicorp/raft"
)

// Pipelined replication must stay off: see the MaxRPCsInFlight comment in transport.go.
func TestTransportDoesNotPipeline(t *testing.T) {
	trans, err := newNetworkTransport(Config{BindAddr: "127.0.0.1:0", Advertise: "127.0.0.1:7000"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer trans.Close()
	if _, err := trans.AppendEntriesPipeline("peer", "127.0.0.1:1"); !errors.Is(err, hraft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("AppendEntriesPipeline = %v, want ErrPipelineReplicationNotSupported", err)
	}
}
