package raft

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	hraft "github.com/hashicorp/raft"
)

// rejoinMarker is the file that keeps a rejoining node from voting across restarts until it has
// caught up.
const rejoinMarker = "rejoining"

// voteGate is the transport wrapper of every node. It disables pipelined replication (see
// AppendEntriesPipeline) and keeps a rejoining node from voting.
//
// A node that lost its disk but whose old self may still be a voter must not vote until it holds the
// committed log again: with an empty log and a forgotten term it would grant any candidate its vote,
// and a candidate missing committed entries could win. Raft's safety assumes voters never forget.
// voteGate wraps the transport and refuses vote, pre-vote and leadership-transfer requests while the
// node is rejoining; log replication and snapshots pass, so the node catches up.
type voteGate struct {
	hraft.Transport
	rejoining *atomic.Bool
	header    hraft.RPCHeader
	out       chan hraft.RPC
	done      chan struct{}
	closeOnce sync.Once
}

func newVoteGate(inner hraft.Transport, rejoining *atomic.Bool, id string) *voteGate {
	g := &voteGate{
		Transport: inner,
		rejoining: rejoining,
		header:    hraft.RPCHeader{ProtocolVersion: hraft.ProtocolVersionMax, ID: []byte(id), Addr: inner.EncodePeer(hraft.ServerID(id), inner.LocalAddr())},
		out:       make(chan hraft.RPC),
		done:      make(chan struct{}),
	}
	go g.filter()
	return g
}

func (g *voteGate) Consumer() <-chan hraft.RPC { return g.out }

func (g *voteGate) filter() {
	in := g.Transport.Consumer()
	for {
		select {
		case <-g.done:
			return
		case rpc := <-in:
			if g.rejoining.Load() && g.refuse(rpc) {
				continue
			}
			select {
			case g.out <- rpc:
			case <-g.done:
				return
			}
		}
	}
}

var errRejoining = errors.New("this node is rejoining after losing its data and does not vote or lead until it has caught up")

// refuse answers the requests a rejoining node must not grant.
func (g *voteGate) refuse(rpc hraft.RPC) bool {
	switch req := rpc.Command.(type) {
	case *hraft.RequestVoteRequest:
		rpc.Respond(&hraft.RequestVoteResponse{RPCHeader: g.header, Term: req.Term, Granted: false}, nil)
	case *hraft.RequestPreVoteRequest:
		rpc.Respond(&hraft.RequestPreVoteResponse{RPCHeader: g.header, Term: req.Term, Granted: false}, nil)
	case *hraft.TimeoutNowRequest:
		rpc.Respond(nil, errRejoining)
	default:
		return false
	}
	return true
}

// AppendEntriesPipeline is refused, so Raft replicates with one AppendEntries RPC at a time. Pipelined
// replication in hashicorp/raft v1.8 can deadlock after a rejected append (a follower then silently stops
// receiving entries and Shutdown hangs); at our block sizes and on a LAN the pipeline buys little.
func (g *voteGate) AppendEntriesPipeline(hraft.ServerID, hraft.ServerAddress) (hraft.AppendPipeline, error) {
	return nil, hraft.ErrPipelineReplicationNotSupported
}

// RequestPreVote keeps pre-vote working through the wrapper.
func (g *voteGate) RequestPreVote(id hraft.ServerID, target hraft.ServerAddress, args *hraft.RequestPreVoteRequest, resp *hraft.RequestPreVoteResponse) error {
	pv, ok := g.Transport.(hraft.WithPreVote)
	if !ok {
		return fmt.Errorf("transport does not support pre-vote")
	}
	return pv.RequestPreVote(id, target, args, resp)
}

// Close stops the filter and closes the inner transport.
func (g *voteGate) Close() error {
	g.closeOnce.Do(func() { close(g.done) })
	if c, ok := g.Transport.(hraft.WithClose); ok {
		return c.Close()
	}
	return nil
}

// seenNonvoterNote is written into the marker once the rejoining node was a non-voter: from then on it
// may vote again as soon as it has caught up, also after a restart.
const seenNonvoterNote = "seen as a non-voter\n"

func markSeenNonvoter(dataDir string) error {
	if dataDir == "" {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(dataDir, rejoinMarker), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cannot update rejoin marker: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(seenNonvoterNote); err != nil {
		return fmt.Errorf("cannot update rejoin marker: %w", err)
	}
	return f.Sync()
}

func rejoinSeenNonvoter(dataDir string) bool {
	data, err := os.ReadFile(filepath.Join(dataDir, rejoinMarker))
	return err == nil && strings.Contains(string(data), seenNonvoterNote)
}

// startRejoin records on disk that this node is rejoining.
func startRejoin(dataDir string) error {
	if dataDir == "" { // in-memory: nothing to survive a restart
		return nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %w", dataDir, err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, rejoinMarker), []byte("rejoining after data loss\n"), 0o600); err != nil {
		return fmt.Errorf("cannot record rejoin: %w", err)
	}
	return nil
}

func rejoinPending(dataDir string) bool {
	if dataDir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(dataDir, rejoinMarker))
	return err == nil
}
