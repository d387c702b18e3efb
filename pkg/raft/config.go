// Package raft wraps hashicorp/raft for the sequencer: configuration with LAN timings, durable stores,
// a transport that advertises stable DNS names and can run over mutual TLS, compare-and-set membership,
// autopilot promotion of non-voters and a status snapshot. Callers never touch *hraft.Raft directly.
package raft

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
)

// Timings are the Raft timeouts. The defaults suit a LAN: a dead leader is noticed within
// 100–200 ms and a new one elected well inside a second.
type Timings struct {
	// Heartbeat is how long a follower waits without contact before it calls an election.
	Heartbeat time.Duration
	// Election is how long a candidate waits for votes.
	Election time.Duration
	// LeaderLease is how long a leader keeps leading without contact with a quorum.
	LeaderLease time.Duration
	// Commit is how long the leader waits to batch entries before replicating them.
	Commit time.Duration
}

// DefaultTimings are the node's defaults (DESIGN.md §3).
func DefaultTimings() Timings {
	return Timings{
		Heartbeat:   100 * time.Millisecond,
		Election:    400 * time.Millisecond,
		LeaderLease: 50 * time.Millisecond,
		Commit:      10 * time.Millisecond,
	}
}

// Validate reports timings that hashicorp/raft would refuse or that cannot work, naming the flag to fix.
func (t Timings) Validate() error {
	var errs []error
	if t.Heartbeat < 5*time.Millisecond {
		errs = append(errs, fmt.Errorf("heartbeat timeout %v is below 5ms", t.Heartbeat))
	}
	if t.Election < t.Heartbeat {
		errs = append(errs, fmt.Errorf("election timeout %v must be at least the heartbeat timeout %v", t.Election, t.Heartbeat))
	}
	if t.LeaderLease < 5*time.Millisecond || t.LeaderLease > t.Heartbeat {
		errs = append(errs, fmt.Errorf("leader lease timeout %v must be between 5ms and the heartbeat timeout %v", t.LeaderLease, t.Heartbeat))
	}
	if t.Commit <= 0 {
		errs = append(errs, fmt.Errorf("commit timeout %v must be positive", t.Commit))
	}
	return errors.Join(errs...)
}

// Config configures a Node. It is read once by NewNode and never mutated.
type Config struct {
	// ID is this server's Raft ID (the pod name in Kubernetes).
	ID string
	// DataDir holds raft.db (log and stable store) and snapshots/.
	DataDir string
	// BindAddr is the address the Raft transport listens on, e.g. "0.0.0.0:7000".
	BindAddr string
	// Advertise is the address peers dial, a stable DNS name in Kubernetes, e.g. "demo-0.demo-peers.ns.svc.cluster.local:7000".
	Advertise string
	// Timings are the Raft timeouts.
	Timings Timings
	// SnapshotThreshold is how many new log entries trigger a snapshot.
	SnapshotThreshold uint64
	// SnapshotInterval is how often Raft checks whether to snapshot.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot, so a briefly lagging follower catches up from the log.
	TrailingLogs uint64
	// TLS, when set, runs the transport over mutual TLS.
	TLS *TransportTLS
	// InMemory uses in-memory stores and transport (tests only); DataDir and addresses are ignored.
	InMemory bool
	// Autopilot configures promotion of non-voters; zero values take defaults.
	Autopilot AutopilotConfig
	// RecoveryFile, when it exists and was not applied before, replaces the Raft configuration before
	// Raft starts (hashicorp/raft's peers JSON). It recovers a cluster that lost its quorum.
	RecoveryFile string
	// ClusterExists says the cluster was bootstrapped before. A node that then starts with no Raft
	// state lost its data (or is new): it refuses to vote or lead until EndRejoin, even across restarts.
	ClusterExists bool
}

// TransportTLS is the mutual-TLS configuration of the Raft transport.
type TransportTLS struct {
	// Server is used on accepted connections; it must require and verify client certificates.
	Server *tls.Config
	// Client is used to dial peers; it must carry this node's certificate and trust the peers' CA.
	Client *tls.Config
}

// AutopilotConfig tunes raft-autopilot, which promotes stable non-voters on the leader.
type AutopilotConfig struct {
	// StabilizationTime is how long a non-voter must be healthy before promotion.
	StabilizationTime time.Duration
	// LastContactThreshold is how long without leader contact makes a server unhealthy.
	LastContactThreshold time.Duration
	// MaxTrailingLogs is how far behind the leader's log a healthy server may be.
	MaxTrailingLogs uint64
}

func (c Config) withDefaults() Config {
	if c.Timings == (Timings{}) {
		c.Timings = DefaultTimings()
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 2048
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 20 * time.Second
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 2048
	}
	if c.Autopilot.StabilizationTime == 0 {
		c.Autopilot.StabilizationTime = 2 * time.Second
	}
	if c.Autopilot.LastContactThreshold == 0 {
		c.Autopilot.LastContactThreshold = 10 * c.Timings.Heartbeat
	}
	if c.Autopilot.MaxTrailingLogs == 0 {
		c.Autopilot.MaxTrailingLogs = 500
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("raft server ID is empty"))
	}
	if !c.InMemory {
		if c.DataDir == "" {
			errs = append(errs, errors.New("data directory is empty"))
		}
		if c.BindAddr == "" {
			errs = append(errs, errors.New("raft bind address is empty"))
		}
		if c.Advertise == "" {
			errs = append(errs, errors.New("raft advertise address is empty"))
		}
	}
	if err := c.Timings.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) hraftConfig(logger hclogger) *hraft.Config {
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(c.ID)
	rc.HeartbeatTimeout = c.Timings.Heartbeat
	rc.ElectionTimeout = c.Timings.Election
	rc.LeaderLeaseTimeout = c.Timings.LeaderLease
	rc.CommitTimeout = c.Timings.Commit
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.SnapshotInterval = c.SnapshotInterval
	rc.TrailingLogs = c.TrailingLogs
	// A removed member keeps running so it can report its state and be added back later; it cannot
	// disrupt the cluster because members reject votes from servers outside the configuration.
	rc.ShutdownOnRemove = false
	rc.MaxAppendEntries = 256
	rc.BatchApplyCh = true
	rc.NoLegacyTelemetry = true
	rc.Logger = logger
	return rc
}
