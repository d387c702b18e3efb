package raft

import (
	"sync/atomic"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
)

func TestVoteGateRefusesVotesWhileRejoining(t *testing.T) {
	addrA, a := hraft.NewInmemTransport("a:1")
	addrB, b := hraft.NewInmemTransport("b:1")
	a.Connect(addrB, b)
	b.Connect(addrA, a)
	var rejoining atomic.Bool
	rejoining.Store(true)
	gate := newVoteGate(b, &rejoining, "b")
	defer gate.Close()

	var vote hraft.RequestVoteResponse
	if err := a.RequestVote("b", addrB, &hraft.RequestVoteRequest{Term: 7, RPCHeader: hraft.RPCHeader{ID: []byte("a")}}, &vote); err != nil {
		t.Fatal(err)
	}
	if vote.Granted || vote.Term != 7 {
		t.Fatalf("a rejoining node granted a vote: %+v", vote)
	}
	var pre hraft.RequestPreVoteResponse
	if err := a.RequestPreVote("b", addrB, &hraft.RequestPreVoteRequest{Term: 7}, &pre); err != nil {
		t.Fatal(err)
	}
	if pre.Granted {
		t.Fatal("a rejoining node granted a pre-vote")
	}
	if err := a.TimeoutNow("b", addrB, &hraft.TimeoutNowRequest{}, &hraft.TimeoutNowResponse{}); err == nil {
		t.Fatal("a rejoining node accepted leadership")
	}

	// Log replication passes through, so the node can catch up.
	go func() {
		rpc := <-gate.Consumer()
		rpc.Respond(&hraft.AppendEntriesResponse{Success: true}, nil)
	}()
	var app hraft.AppendEntriesResponse
	if err := a.AppendEntries("b", addrB, &hraft.AppendEntriesRequest{Term: 7, Entries: []*hraft.Log{{Index: 1}}}, &app); err != nil || !app.Success {
		t.Fatalf("append entries blocked: %v %+v", err, app)
	}

	// Once caught up, votes reach Raft again.
	rejoining.Store(false)
	got := make(chan hraft.RPC, 1)
	go func() {
		rpc := <-gate.Consumer()
		got <- rpc
		rpc.Respond(&hraft.RequestVoteResponse{Granted: true}, nil)
	}()
	if err := a.RequestVote("b", addrB, &hraft.RequestVoteRequest{Term: 8}, &vote); err != nil || !vote.Granted {
		t.Fatalf("vote after rejoin: %v %+v", err, vote)
	}
	select {
	case rpc := <-got:
		if _, ok := rpc.Command.(*hraft.RequestVoteRequest); !ok {
			t.Fatalf("unexpected rpc %T", rpc.Command)
		}
	case <-time.After(time.Second):
		t.Fatal("vote did not reach raft")
	}
}

func TestRejoinMarkerSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	if rejoinPending(dir) {
		t.Fatal("marker before start")
	}
	if err := startRejoin(dir); err != nil {
		t.Fatal(err)
	}
	if !rejoinPending(dir) {
		t.Fatal("marker lost")
	}
}
