package campaign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/seqops/sequencer-operator/internal/chaos/checker"
	"github.com/seqops/sequencer-operator/internal/chaos/cluster"
	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

// monitor records every node's head as served during the run, so a block that was served and later
// lost (on a node since wiped, say) still reaches the checker.
type monitor struct {
	mu     sync.Mutex
	obs    []checker.Observation
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startMonitor(ctx context.Context, c *cluster.Cluster, every time.Duration) *monitor {
	ctx, cancel := context.WithCancel(ctx)
	m := &monitor{cancel: cancel}
	for _, n := range c.Nodes {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			var last uint64
			for ctx.Err() == nil {
				if n.Up() {
					rctx, rcancel := context.WithTimeout(ctx, time.Second)
					st, err := n.Client.Status(rctx)
					rcancel()
					if err == nil && st.Height != last {
						last = st.Height
						m.mu.Lock()
						m.obs = append(m.obs, checker.Observation{Node: n.ID, Height: st.Height, Hash: st.HeadHash, At: time.Now()})
						m.mu.Unlock()
					}
				}
				sleepCtx(ctx, every)
			}
		}()
	}
	return m
}

func (m *monitor) stop() []checker.Observation {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.obs
}

// fetchChain reads blocks 1..height from a node in their protobuf form, several at a time.
func fetchChain(ctx context.Context, n *cluster.Node, height uint64) (checker.NodeChain, error) {
	nc := checker.NodeChain{Name: n.ID, Blocks: make([]*chainpb.Block, height)}
	const workers = 8
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := uint64(w) + 1; h <= height; h += workers {
				var raw []byte
				var err error
				for try := 0; try < 5; try++ {
					rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					raw, err = n.Client.BlockProto(rctx, h)
					cancel()
					if err == nil || ctx.Err() != nil {
						break
					}
				}
				if err != nil {
					errs[w] = fmt.Errorf("block %d from %s: %w", h, n.ID, err)
					return
				}
				b, err := chain.UnmarshalBlock(raw)
				if err != nil {
					errs[w] = fmt.Errorf("block %d from %s: %w", h, n.ID, err)
					return
				}
				nc.Blocks[h-1] = b
			}
		}()
	}
	wg.Wait()
	return nc, errors.Join(errs...)
}

// readArchive opens a wiped data dir's chain store offline and reads every block it holds; heights
// a snapshot restore left unfilled are nil.
func readArchive(dir, chainID string, c *cluster.Cluster) (checker.NodeChain, error) {
	nc := checker.NodeChain{Name: "wiped " + filepath.Base(dir), Partial: true}
	chainDir := filepath.Join(dir, "chain")
	if _, err := os.Stat(filepath.Join(chainDir, chain.StoreFileName)); errors.Is(err, os.ErrNotExist) {
		return nc, nil // wiped before it stored anything
	}
	ch, err := chain.Open(chain.Config{Dir: chainDir, ChainID: chainID, Proposer: c.Proposer})
	if err != nil {
		return nc, fmt.Errorf("cannot open wiped chain %s: %w", dir, err)
	}
	defer ch.Close()
	head := ch.Head().Height
	nc.Blocks = make([]*chainpb.Block, head)
	for h := uint64(1); h <= head; h++ {
		b, err := ch.Block(h)
		if errors.Is(err, chain.ErrNotFound) {
			continue
		}
		if err != nil {
			return nc, fmt.Errorf("cannot read wiped chain %s: %w", dir, err)
		}
		nc.Blocks[h-1] = b
	}
	return nc, nil
}
