// Package sequencer assembles one sequencer node: the chain, the Raft server, the role manager, the
// mempool and the node API, and decides at start whether this node may bootstrap a cluster.
package sequencer

import (
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/failover"
	sraft "github.com/seqops/sequencer-operator/pkg/raft"
)

// Initial cluster states, as the operator records them: "new" until the cluster was bootstrapped,
// "existing" after. A node told "existing" never bootstraps, whatever its disk holds.
const (
	ClusterStateNew      = "new"
	ClusterStateExisting = "existing"
)

// Config is everything a node needs. It is read at start and never mutated.
type Config struct {
	// ID is the node's Raft ID.
	ID string
	// ChainID names the chain; blocks of another chain are refused.
	ChainID string
	// DataDir holds the chain store and the Raft state.
	DataDir string
	// RaftBind is the Raft listen address; RaftAdvertise the address peers dial.
	RaftBind, RaftAdvertise string
	// HTTPAddr is the node API's listen address. Peers' APIs are reached on the same port at the host
	// of their Raft address.
	HTTPAddr string
	// Bootstrap asks to bootstrap a one-member cluster if no Raft state exists.
	Bootstrap bool
	// InitialClusterState is ClusterStateNew or ClusterStateExisting.
	InitialClusterState string
	// Join is the node API URL of any member to ask to add this node as a non-voter at start.
	Join string
	// APIToken guards membership and transfer calls and is sent when joining.
	APIToken string
	// SigningKey is the sequencer key all members share.
	SigningKey ed25519.PrivateKey
	// Executor runs blocks' transactions; nil uses the key/value executor (chain.KVExecutor).
	Executor chain.Executor
	// Producer tunes block production.
	Producer failover.Config
	// Timings are the Raft timeouts.
	Timings sraft.Timings
	// SnapshotThreshold and TrailingLogs size Raft snapshots; zero takes the defaults.
	SnapshotThreshold, TrailingLogs uint64
	// SnapshotInterval is how often Raft checks whether to snapshot; zero takes the default.
	SnapshotInterval time.Duration
	// Autopilot tunes promotion of non-voters.
	Autopilot sraft.AutopilotConfig
	// RecoveryFile names a hashicorp/raft peers JSON file applied once at start to recover from a lost
	// quorum (see docs/runbook.md).
	RecoveryFile string
	// RaftTLS, when set, runs the Raft transport over mutual TLS.
	RaftTLS *sraft.TransportTLS
	// APITLS, when set, serves the node API over TLS; APIClientTLS is used to call peers' APIs.
	APITLS, APIClientTLS *tls.Config
	// MempoolTxs and MempoolBytes bound the mempool; MaxTxBytes bounds one transaction.
	MempoolTxs, MempoolBytes, MaxTxBytes int
	// TxWait bounds how long POST /tx waits for commit.
	TxWait time.Duration
	// Version is reported in the status document.
	Version string
	// InMemoryRaft runs Raft with in-memory stores and transport (tests only).
	InMemoryRaft bool
}

func (c Config) withDefaults() Config {
	if c.InitialClusterState == "" {
		c.InitialClusterState = ClusterStateNew
	}
	if c.Timings == (sraft.Timings{}) {
		c.Timings = sraft.DefaultTimings()
	}
	if c.MempoolTxs == 0 {
		c.MempoolTxs = 200_000
	}
	if c.MempoolBytes == 0 {
		c.MempoolBytes = 64 << 20
	}
	if c.MaxTxBytes == 0 {
		c.MaxTxBytes = 64 << 10
	}
	if c.TxWait == 0 {
		c.TxWait = 10 * time.Second
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return c
}

// Validate reports every problem of the configuration at once, naming what to fix.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("--id is required"))
	}
	if c.ChainID == "" {
		errs = append(errs, errors.New("--chain-id is required"))
	}
	if c.DataDir == "" && !c.InMemoryRaft {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	if len(c.SigningKey) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("a signing key is required (--signing-key-file)"))
	}
	if c.InitialClusterState != ClusterStateNew && c.InitialClusterState != ClusterStateExisting {
		errs = append(errs, fmt.Errorf("--initial-cluster-state %q must be %q or %q", c.InitialClusterState, ClusterStateNew, ClusterStateExisting))
	}
	if !c.InMemoryRaft {
		if _, _, err := net.SplitHostPort(c.RaftAdvertise); err != nil {
			errs = append(errs, fmt.Errorf("--raft-advertise %q must be host:port", c.RaftAdvertise))
		}
		if _, err := c.apiPort(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Timings.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) apiPort() (int, error) {
	_, p, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		return 0, fmt.Errorf("--http-addr %q must be host:port", c.HTTPAddr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 {
		return 0, fmt.Errorf("--http-addr %q needs a fixed port: peers reach the API on it", c.HTTPAddr)
	}
	return port, nil
}

// BootstrapDecision says whether a node bootstraps a new cluster at start, and why.
type BootstrapDecision struct {
	Bootstrap bool
	Reason    string
}

// DecideBootstrap is the only place a node decides to start a cluster. It bootstraps only when asked,
// when nothing is on disk, and when the cluster is not known to exist: a member that lost its disk
// after the cluster was created waits to be added back instead of founding a second cluster.
func DecideBootstrap(requested, hasState bool, clusterState string) BootstrapDecision {
	switch {
	case !requested:
		return BootstrapDecision{Reason: "bootstrap not requested; waiting to be added as a member"}
	case hasState:
		return BootstrapDecision{Reason: "raft state exists on disk; rejoining the existing cluster"}
	case clusterState == ClusterStateExisting:
		return BootstrapDecision{Reason: "the cluster already exists (initial cluster state \"existing\"); waiting to be added back as a non-voter"}
	}
	return BootstrapDecision{Bootstrap: true, Reason: "no raft state and a new cluster: bootstrapping a one-member cluster"}
}
