package main

import (
	"errors"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/seqops/sequencer-operator/internal/bench/floor"
)

// newFloorNodeCommand is the hidden bare-Raft node the floor benchmark starts three of.
func newFloorNodeCommand() *cobra.Command {
	o := floor.NodeOptions{Out: os.Stdout}
	cmd := &cobra.Command{
		Use:    "raft-floor-node",
		Short:  "Run one bare hashicorp/raft node of the failover floor benchmark",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if o.ID == "" || o.Bind == "" || o.Dir == "" || o.Peers == "" {
				return errors.New("--id, --bind, --dir and --peers are required")
			}
			return floor.RunNode(o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.ID, "id", "", "Raft server ID")
	fs.StringVar(&o.Bind, "bind", "", "Raft address host:port")
	fs.StringVar(&o.Dir, "dir", "", "data directory")
	fs.StringVar(&o.Peers, "peers", "", "all members as id=host:port,...")
	fs.DurationVar(&o.Heartbeat, "heartbeat", 100*time.Millisecond, "heartbeat timeout")
	fs.DurationVar(&o.Election, "election", 400*time.Millisecond, "election timeout")
	fs.DurationVar(&o.Lease, "lease", 50*time.Millisecond, "leader lease timeout")
	fs.DurationVar(&o.Commit, "commit", 10*time.Millisecond, "commit timeout")
	fs.DurationVar(&o.BlockTime, "block-time", 100*time.Millisecond, "one entry per this interval while leading")
	return cmd
}
