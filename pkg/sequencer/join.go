package sequencer

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// join asks the cluster behind cfg.Join to add this node as a non-voter, retrying until it is a member.
// Asking again is harmless: adding an existing member with the same address changes nothing.
func (n *Node) join(ctx context.Context) {
	client := nodeapi.NewClient(n.cfg.Join, nodeapi.WithToken(n.cfg.APIToken), nodeapi.WithHTTPClient(n.client))
	backoff := 200 * time.Millisecond
	for {
		if cfg, err := n.raft.Configuration(); err == nil {
			if m, ok := cfg.Has(n.cfg.ID); ok && !(m.Voter && n.raft.Rejoining()) {
				n.log.Info("Member of the cluster", zap.String("via", n.cfg.Join))
				return
			}
		}
		if n.raft.Rejoining() {
			// Our old self may still be a voter that counted a log we lost: drop it so we come back as a
			// non-voter. Removing a non-member changes nothing, so this is safe to repeat.
			if cfg, err := client.Members(ctx); err == nil {
				for _, m := range cfg.Servers {
					if m.ID == n.cfg.ID && m.Suffrage == nodeapi.SuffrageVoter {
						if _, err := client.RemoveMember(ctx, n.cfg.ID, 0); err != nil {
							n.log.Warn("Cannot drop the voter entry this node had before it lost its data", zap.Error(err))
						}
					}
				}
			}
		}
		reqCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := client.AddMember(reqCtx, nodeapi.AddMemberRequest{ID: n.cfg.ID, Address: n.raft.Address()})
		cancel()
		if err == nil {
			n.log.Info("Asked to join the cluster", zap.String("via", n.cfg.Join))
			backoff = 200 * time.Millisecond
		} else {
			n.log.Warn("Cannot join the cluster yet", zap.String("via", n.cfg.Join), zap.Error(err))
			if nodeapi.IsUnauthorized(err) {
				backoff = 5 * time.Second
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
