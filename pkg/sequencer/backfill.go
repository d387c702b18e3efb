package sequencer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// backfiller fetches the historical blocks a node lacks after it was restored from a Raft snapshot
// (the snapshot carries state and head, not history). Blocks are fetched from peers top-down, each
// checked against the parent hash of the block above it, so a peer cannot slip in a forged block.
type backfiller struct {
	n      *Node
	wakeCh chan struct{}
}

func newBackfiller(n *Node) *backfiller {
	return &backfiller{n: n, wakeCh: make(chan struct{}, 1)}
}

// wake asks the backfiller to look for gaps; it runs on Raft's apply goroutine and never blocks.
func (b *backfiller) wake() {
	select {
	case b.wakeCh <- struct{}{}:
	default:
	}
	b.n.changes.Notify()
}

// active reports whether history is missing.
func (b *backfiller) active() bool {
	_, _, missing := b.n.chain.Missing()
	return missing
}

func (b *backfiller) run(ctx context.Context) {
	b.wake()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wakeCh:
		}
		for {
			from, to, ok := b.n.chain.Missing()
			if !ok {
				b.n.changes.Notify()
				break
			}
			b.n.log.Info("Backfilling history", zap.Uint64("from", from), zap.Uint64("to", to))
			if err := b.fill(ctx, from, to); err != nil {
				if ctx.Err() != nil {
					return
				}
				b.n.log.Warn("Backfill paused", zap.Error(err))
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}
	}
}

// fill stores blocks to..from, highest first.
func (b *backfiller) fill(ctx context.Context, from, to uint64) error {
	for h := to; h >= from && h > 0; h-- {
		blk, err := b.fetch(ctx, h)
		if err != nil {
			return err
		}
		if err := b.n.chain.Backfill(blk); err != nil {
			return fmt.Errorf("cannot backfill block %d: %w", h, err)
		}
		if h%1000 == 0 {
			b.n.changes.Notify()
		}
	}
	return nil
}

// fetch gets block h from the leader, or from any other member when the leader cannot serve it.
func (b *backfiller) fetch(ctx context.Context, h uint64) (*chainpb.Block, error) {
	var errs []error
	for _, base := range b.peers() {
		reqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		raw, err := nodeapi.NewClient(base, nodeapi.WithHTTPClient(b.n.client)).BlockProto(reqCtx, h)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		blk, err := chain.UnmarshalBlock(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s sent an undecodable block %d: %w", base, h, err))
			continue
		}
		return blk, nil
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("no peer to fetch block %d from", h)
	}
	return nil, fmt.Errorf("cannot fetch block %d: %w", h, errors.Join(errs...))
}

func (b *backfiller) peers() []string {
	var out []string
	if leader := b.n.LeaderAPI(); leader != "" {
		if lid, _ := b.n.raft.Leader(); lid != b.n.cfg.ID {
			out = append(out, leader)
		}
	}
	cfg, err := b.n.raft.Configuration()
	if err != nil {
		return out
	}
	for _, m := range cfg.Members {
		if m.ID == b.n.cfg.ID {
			continue
		}
		if u := b.n.peerAPI(m.Address); u != "" && (len(out) == 0 || u != out[0]) {
			out = append(out, u)
		}
	}
	return out
}
