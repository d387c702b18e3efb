package main

import (
	"context"
	"errors"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/seqops/sequencer-operator/internal/bench/commitpath"
)

// newCommitPathNodeCommand is the hidden node process the commit-path benchmark starts three of:
// one sequencer node and its load generator, until SIGTERM.
func newCommitPathNodeCommand() *cobra.Command {
	var o commitpath.NodeOptions
	cmd := &cobra.Command{
		Use:    "commitpath-node",
		Short:  "Run one sequencer node of the commit-path benchmark, with its load generator",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if o.Dir == "" || o.RaftAddr == "" || o.HTTPAddr == "" || o.KeySeed == "" {
				return errors.New("--dir, --raft, --http and --key-seed are required")
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return commitpath.RunNode(ctx, o)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.Index, "index", 0, "node index: its ID is node-<index>; node 0 bootstraps")
	fs.StringVar(&o.Dir, "dir", "", "data directory")
	fs.StringVar(&o.RaftAddr, "raft", "", "Raft address host:port")
	fs.StringVar(&o.HTTPAddr, "http", "", "node API address host:port")
	fs.StringVar(&o.Join, "join", "", "node API URL of a member to join (empty: bootstrap)")
	fs.StringVar(&o.KeySeed, "key-seed", "", "hex ed25519 seed of the chain's proposer key")
	fs.DurationVar(&o.BlockTime, "block-time", 100*time.Millisecond, "block time")
	fs.IntVar(&o.MaxTxs, "max-txs", 1000, "transactions per block at most")
	fs.Int64Var(&o.Outstanding, "outstanding", 3000, "submitted but not committed transactions at most, while producing")
	fs.IntVar(&o.Feeders, "feeders", 2, "load-generating goroutines")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write this process's CPU profile here")
	return cmd
}
