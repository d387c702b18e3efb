package sequencer

import (
	"context"
	"fmt"
	"time"

	autopilot "github.com/hashicorp/raft-autopilot"

	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// fetchStats asks a peer's node API for its Raft progress, for autopilot's health checks.
func (n *Node) fetchStats(ctx context.Context, id, raftAddr string) (*autopilot.ServerStats, error) {
	base := n.peerAPI(raftAddr)
	if base == "" {
		return nil, fmt.Errorf("no node API address for %s at %s", id, raftAddr)
	}
	st, err := nodeapi.NewClient(base, nodeapi.WithHTTPClient(n.client)).Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot fetch status of %s: %w", id, err)
	}
	if st.NodeID != id {
		return nil, fmt.Errorf("%s answered as %q, not %q", base, st.NodeID, id)
	}
	stats := &autopilot.ServerStats{LastTerm: st.LastLogTerm, LastIndex: st.LastLogIndex}
	if st.LastContact != nil {
		stats.LastContact = time.Since(*st.LastContact)
	}
	return stats, nil
}
