// Package floor measures the failover floor of hashicorp/raft itself: three processes of a bare Raft
// server (raft-boltdb/v2 stores, a trivial FSM) that propose one entry per block time while leading.
// SIGKILL of the leader → first entry proposed and committed by the new leader is the least any design
// built on this library can achieve at the same timings.
package floor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// NodeOptions configure one floor node process.
type NodeOptions struct {
	ID, Bind, Dir string
	// Peers is "id=host:port,..." and includes this node.
	Peers                              string
	Heartbeat, Election, Lease, Commit time.Duration
	BlockTime                          time.Duration
	Out                                io.Writer
}

// The lines a floor node prints, one per event, each with the node's wall clock in Unix nanoseconds:
//
//	L <1|0> <term> <nowNano>                       leadership gained (1) or lost (0)
//	A <index> <term> <proposalNano> <nowNano>      an entry applied to the FSM
//
// The benchmark reads them from the process's stdout.

type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = fmt.Fprintf(p.w, format, args...)
}

type fsm struct{ out *printer }

func (f *fsm) Apply(l *hraft.Log) any {
	if l.Type == hraft.LogCommand && len(l.Data) == 8 {
		f.out.printf("A %d %d %d %d\n", l.Index, l.Term, int64(binary.BigEndian.Uint64(l.Data)), time.Now().UnixNano())
	}
	return nil
}

func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) { return emptySnapshot{}, nil }
func (f *fsm) Restore(rc io.ReadCloser) error       { return rc.Close() }

type emptySnapshot struct{}

func (emptySnapshot) Persist(sink hraft.SnapshotSink) error { return sink.Close() }
func (emptySnapshot) Release()                              {}

// RunNode runs a floor node until the process is killed.
func RunNode(o NodeOptions) error {
	out := &printer{w: o.Out}
	var servers []hraft.Server
	for _, p := range strings.Split(o.Peers, ",") {
		id, addr, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("--peers entry %q is not id=host:port", p)
		}
		servers = append(servers, hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(id), Address: hraft.ServerAddress(addr)})
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "floor", Level: hclog.Error, Output: os.Stderr})
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(o.Dir, "raft.db")})
	if err != nil {
		return fmt.Errorf("cannot open raft store: %w", err)
	}
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(o.Dir, 2, logger)
	if err != nil {
		return err
	}
	trans, err := hraft.NewTCPTransportWithLogger(o.Bind, nil, 3, 10*time.Second, logger)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", o.Bind, err)
	}
	cfg := hraft.DefaultConfig()
	cfg.LocalID = hraft.ServerID(o.ID)
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout, cfg.CommitTimeout = o.Heartbeat, o.Election, o.Lease, o.Commit
	cfg.Logger = logger
	notify := make(chan bool, 16)
	cfg.NotifyCh = notify
	has, err := hraft.HasExistingState(store, store, snaps)
	if err != nil {
		return err
	}
	if !has {
		if err := hraft.BootstrapCluster(cfg, store, store, snaps, trans, hraft.Configuration{Servers: servers}); err != nil {
			return fmt.Errorf("cannot bootstrap: %w", err)
		}
	}
	r, err := hraft.NewRaft(cfg, &fsm{out: out}, store, store, snaps, trans)
	if err != nil {
		return fmt.Errorf("cannot start raft: %w", err)
	}
	// Propose at once on winning leadership, then one entry per block time, each after the previous
	// one committed: the same rhythm as the sequencer's producer, without its barrier or block work.
	ticker := time.NewTicker(o.BlockTime)
	defer ticker.Stop()
	leading := false
	propose := func() {
		var data [8]byte
		binary.BigEndian.PutUint64(data[:], uint64(time.Now().UnixNano()))
		if err := r.Apply(data[:], 10*o.BlockTime+time.Second).Error(); err != nil && !errors.Is(err, hraft.ErrNotLeader) && !errors.Is(err, hraft.ErrLeadershipLost) {
			logger.Warn("apply failed", "error", err)
		}
	}
	for {
		select {
		case l := <-notify:
			leading = l
			v := 0
			if l {
				v = 1
			}
			out.printf("L %d %d %d\n", v, r.CurrentTerm(), time.Now().UnixNano())
			if l {
				propose()
			}
		case <-ticker.C:
			if leading {
				propose()
			}
		}
	}
}
