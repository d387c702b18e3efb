package raft

import (
	"context"
	"sync"

	hraft "github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
)

// autopilotDelegate lets raft-autopilot promote non-voters that have been healthy for the
// stabilization time. Membership itself is the operator's: autopilot never removes servers.
type autopilotDelegate struct {
	node *Node
}

func (d *autopilotDelegate) AutopilotConfig() *autopilot.Config {
	c := d.node.cfg.Autopilot
	return &autopilot.Config{
		CleanupDeadServers:      false,
		LastContactThreshold:    c.LastContactThreshold,
		MaxTrailingLogs:         c.MaxTrailingLogs,
		MinQuorum:               1,
		ServerStabilizationTime: c.StabilizationTime,
	}
}

func (d *autopilotDelegate) NotifyState(*autopilot.State) { d.node.changes.Notify() }

func (d *autopilotDelegate) FetchServerStats(ctx context.Context, servers map[hraft.ServerID]*autopilot.Server) map[hraft.ServerID]*autopilot.ServerStats {
	out := make(map[hraft.ServerID]*autopilot.ServerStats, len(servers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, srv := range servers {
		if string(id) == d.node.cfg.ID {
			p := d.node.Progress()
			mu.Lock()
			out[id] = &autopilot.ServerStats{LastTerm: p.LastLogTerm, LastIndex: p.LastLogIndex}
			mu.Unlock()
			continue
		}
		if d.node.fetch == nil {
			continue
		}
		wg.Add(1)
		go func(id hraft.ServerID, addr string) {
			defer wg.Done()
			stats, err := d.node.fetch(ctx, string(id), addr)
			if err != nil {
				d.node.logger.Debug("Cannot fetch server stats", "server", id, "error", err)
				return
			}
			mu.Lock()
			out[id] = stats
			mu.Unlock()
		}(id, string(srv.Address))
	}
	wg.Wait()
	return out
}

func (d *autopilotDelegate) KnownServers() map[hraft.ServerID]*autopilot.Server {
	cfg, err := d.node.Configuration()
	if err != nil {
		return nil
	}
	leaderID, _ := d.node.Leader()
	out := make(map[hraft.ServerID]*autopilot.Server, len(cfg.Members))
	for _, m := range cfg.Members {
		out[hraft.ServerID(m.ID)] = &autopilot.Server{
			ID:          hraft.ServerID(m.ID),
			Name:        m.ID,
			Address:     hraft.ServerAddress(m.Address),
			NodeStatus:  autopilot.NodeAlive,
			RaftVersion: hraft.ProtocolVersionMax,
			IsLeader:    m.ID == leaderID,
		}
	}
	return out
}

// RemoveFailedServer is a no-op: removing members is the operator's decision, made through the API.
func (d *autopilotDelegate) RemoveFailedServer(*autopilot.Server) {}
