package sequencer

import (
	"encoding/hex"
	"sort"
	"time"

	autopilot "github.com/hashicorp/raft-autopilot"

	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// catchUpThreshold is how many committed entries a node may have left to apply and still count as
// caught up: at 100 ms blocks, a few blocks of normal pipelining.
const catchUpThreshold = 5

// Status implements nodeapi.Backend: the /raft document, read fresh on every call.
func (n *Node) Status() nodeapi.Status {
	p := n.raft.Progress()
	head := n.chain.Head()
	leaderID, leaderAddr := n.raft.Leader()
	st := nodeapi.Status{
		NodeID:            n.cfg.ID,
		Address:           n.raft.Address(),
		State:             p.State,
		Term:              p.Term,
		LeaderID:          leaderID,
		LeaderAddress:     leaderAddr,
		CommitIndex:       p.CommitIndex,
		AppliedIndex:      p.AppliedIndex,
		LastLogIndex:      p.LastLogIndex,
		LastLogTerm:       p.LastLogTerm,
		LastSnapshotIndex: p.LastSnapshotIndex,
		Height:            head.Height,
		Producing:         n.manager.Producing(),
		Rejoining:         n.raft.Rejoining(),
		Version:           n.cfg.Version,
	}
	if leaderAddr != "" {
		st.LeaderAPI = n.peerAPI(leaderAddr)
	}
	if len(head.Hash) > 0 {
		st.HeadHash = hex.EncodeToString(head.Hash)
	}
	if !p.LastContact.IsZero() {
		lc := p.LastContact.UTC()
		st.LastContact = &lc
	}
	if p.CommitIndex > p.AppliedIndex {
		st.Lag = p.CommitIndex - p.AppliedIndex
	}
	if cfg, err := n.raft.Configuration(); err == nil {
		st.Configuration = n.toAPIConfiguration(cfg)
	}
	st.CatchingUp = st.Lag > catchUpThreshold || n.backfill.active() || (st.State != nodeapi.StateLeader && leaderID == "")
	if ap := n.raft.AutopilotState(); ap != nil {
		st.Autopilot = autopilotHealth(ap)
	}
	return st
}

func autopilotHealth(s *autopilot.State) *nodeapi.AutopilotHealth {
	h := &nodeapi.AutopilotHealth{Healthy: s.Healthy, FailureTolerance: s.FailureTolerance}
	for id, srv := range s.Servers {
		sh := nodeapi.ServerHealth{
			ID:        string(id),
			Healthy:   srv.Health.Healthy,
			Voter:     srv.HasVotingRights(),
			LastIndex: srv.Stats.LastIndex,
			LastTerm:  srv.Stats.LastTerm,
		}
		if !srv.Health.StableSince.IsZero() {
			t := srv.Health.StableSince.UTC().Truncate(time.Millisecond)
			sh.StableSince = &t
		}
		h.Servers = append(h.Servers, sh)
	}
	sort.Slice(h.Servers, func(i, j int) bool { return h.Servers[i].ID < h.Servers[j].ID })
	return h
}
