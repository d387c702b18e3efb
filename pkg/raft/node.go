package raft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
)

type hclogger = hclog.Logger

// shutdownTimeout bounds how long Shutdown waits for Raft's goroutines.
const shutdownTimeout = 10 * time.Second

// Errors callers map to API answers.
var (
	// ErrNotLeader: the call must run on the leader.
	ErrNotLeader = errors.New("this node is not the raft leader")
	// ErrStaleConfiguration: the caller's configuration index is not the current one.
	ErrStaleConfiguration = errors.New("raft configuration changed since the given index")
	// ErrUnknownMember: no member has that ID.
	ErrUnknownMember = errors.New("no raft member has that ID")
	// ErrMemberConflict: the ID or address is already used by a different member.
	ErrMemberConflict = errors.New("raft member conflicts with an existing one")
)

// Member is one server of the Raft configuration.
type Member struct {
	ID      string
	Address string
	// Voter is true for voters, false for non-voters (and staging servers).
	Voter bool
}

// Configuration is a Raft configuration and the log index it was committed at.
type Configuration struct {
	Index   uint64
	Members []Member
}

// Has reports whether id is a member.
func (c Configuration) Has(id string) (Member, bool) {
	for _, m := range c.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// StatsFetcher asks a peer for its Raft progress; autopilot uses it to judge health. The node supplies
// one that calls the peer's node API.
type StatsFetcher func(ctx context.Context, id, address string) (*autopilot.ServerStats, error)

// Node is a Raft server of the sequencer cluster.
type Node struct {
	cfg       Config
	fsm       *FSM
	raft      *hraft.Raft
	transport hraft.Transport
	stores    *stores
	logger    hclogger
	observer  *hraft.Observer
	obsCh     chan hraft.Observation
	autopilot *autopilot.Autopilot
	fetch     StatsFetcher
	changes   *Signal
	done      chan struct{}
	wg        sync.WaitGroup

	// membership serialises configuration changes, so a compare-and-set check and the change it
	// guards cannot interleave with another change.
	membership sync.Mutex

	rejoining    atomic.Bool
	seenNonvoter atomic.Bool

	mu             sync.Mutex
	autopilotStop  context.CancelFunc
	leaderChanges  uint64
	shutdownCalled bool
}

// NewNode opens the stores, starts the transport and the Raft server. It does not bootstrap: call
// Bootstrap for the first member of a new cluster.
func NewNode(cfg Config, fsm *FSM, fetch StatsFetcher, logger hclogger) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid raft configuration: %w", err)
	}
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn})
	}
	n := &Node{cfg: cfg, logger: logger, fsm: fsm, fetch: fetch, changes: NewSignal(), done: make(chan struct{})}
	if cfg.InMemory {
		addr := cfg.Advertise
		if addr == "" {
			addr = cfg.ID
		}
		_, trans := hraft.NewInmemTransport(hraft.ServerAddress(addr))
		mem := hraft.NewInmemStore()
		n.transport = trans
		n.stores = &stores{log: mem, stable: mem, snaps: hraft.NewInmemSnapshotStore()}
	} else {
		st, err := openStores(cfg.DataDir, logger)
		if err != nil {
			return nil, err
		}
		trans, err := newNetworkTransport(cfg, logger)
		if err != nil {
			_ = st.close()
			return nil, err
		}
		n.stores, n.transport = st, trans
	}
	if cfg.ClusterExists {
		has, err := hraft.HasExistingState(n.stores.log, n.stores.stable, n.stores.snaps)
		if err != nil {
			n.closeTransport()
			_ = n.stores.close()
			return nil, fmt.Errorf("cannot read raft state: %w", err)
		}
		if !has {
			if err := startRejoin(cfg.DataDir); err != nil {
				n.closeTransport()
				_ = n.stores.close()
				return nil, err
			}
			n.rejoining.Store(true)
		}
	}
	if rejoinPending(cfg.DataDir) {
		n.rejoining.Store(true)
		n.seenNonvoter.Store(rejoinSeenNonvoter(cfg.DataDir))
	}
	n.transport = newVoteGate(n.transport, &n.rejoining, cfg.ID)
	if !cfg.InMemory {
		if _, err := recoverIfAsked(cfg, fsm, n.stores, n.transport, logger); err != nil {
			n.closeTransport()
			_ = n.stores.close()
			return nil, err
		}
	}
	n.loadSnapshotConfigIndex()
	fsm.afterRestore = n.loadSnapshotConfigIndex
	r, err := hraft.NewRaft(cfg.hraftConfig(logger), fsm, n.stores.log, n.stores.stable, n.stores.snaps, n.transport)
	if err != nil {
		n.closeTransport()
		_ = n.stores.close()
		return nil, fmt.Errorf("cannot start raft: %w", err)
	}
	n.raft = r
	n.autopilot = autopilot.New(r, &autopilotDelegate{node: n},
		autopilot.WithLogger(logger.Named("autopilot")),
		autopilot.WithUpdateInterval(500*time.Millisecond),
		autopilot.WithReconcileInterval(time.Second))

	// Observations only wake the watcher up; the watcher then reads the current state, so an
	// observation dropped from a full channel loses nothing.
	n.obsCh = make(chan hraft.Observation, 64)
	n.observer = hraft.NewObserver(n.obsCh, false, func(o *hraft.Observation) bool {
		switch o.Data.(type) {
		case hraft.LeaderObservation, hraft.RaftState, hraft.PeerObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(n.observer)
	n.wg.Add(1)
	go n.watchLeadership()
	return n, nil
}

// Transport exposes the in-memory transport for wiring test clusters together.
func (n *Node) Transport() hraft.Transport {
	if g, ok := n.transport.(*voteGate); ok {
		return g.Transport
	}
	return n.transport
}

// Rejoining reports whether this node is catching up after losing its data and so refuses to vote.
func (n *Node) Rejoining() bool { return n.rejoining.Load() }

// NoteNonvoter records that the rejoining node has been (re-)added as a non-voter: its old voter entry,
// which counted a log it no longer has, is gone. Only after that may it vote again once caught up.
func (n *Node) NoteNonvoter() error {
	if !n.rejoining.Load() || n.seenNonvoter.Load() {
		return nil
	}
	if !n.cfg.InMemory {
		if err := markSeenNonvoter(n.cfg.DataDir); err != nil {
			return err
		}
	}
	n.seenNonvoter.Store(true)
	return nil
}

// SeenNonvoter reports whether NoteNonvoter was called during this rejoin (also before a restart).
func (n *Node) SeenNonvoter() bool { return n.seenNonvoter.Load() }

// EndRejoin lets a rejoining node vote again; call it once the node holds the committed log.
func (n *Node) EndRejoin() error {
	if !n.rejoining.Load() {
		return nil
	}
	if !n.cfg.InMemory {
		if err := os.Remove(filepath.Join(n.cfg.DataDir, rejoinMarker)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("cannot end rejoin: %w", err)
		}
	}
	n.rejoining.Store(false)
	n.changes.Notify()
	return nil
}

// ID is this server's Raft ID.
func (n *Node) ID() string { return n.cfg.ID }

// Address is this server's advertised Raft address.
func (n *Node) Address() string {
	if n.cfg.InMemory {
		return string(n.transport.LocalAddr())
	}
	return n.cfg.Advertise
}

// HasState reports whether this server has any Raft state on disk (it was a member before).
func (n *Node) HasState() (bool, error) {
	ok, err := hraft.HasExistingState(n.stores.log, n.stores.stable, n.stores.snaps)
	if err != nil {
		return false, fmt.Errorf("cannot read raft state: %w", err)
	}
	return ok, nil
}

// Bootstrap makes this server the one voter of a new cluster. It refuses when any Raft state exists,
// so a restarted first member never starts a second cluster.
func (n *Node) Bootstrap() error {
	has, err := n.HasState()
	if err != nil {
		return err
	}
	if has {
		return fmt.Errorf("cannot bootstrap: raft state already exists for %s", n.cfg.ID)
	}
	f := n.raft.BootstrapCluster(hraft.Configuration{Servers: []hraft.Server{{
		Suffrage: hraft.Voter, ID: hraft.ServerID(n.cfg.ID), Address: hraft.ServerAddress(n.Address()),
	}}})
	if err := f.Error(); err != nil {
		return fmt.Errorf("cannot bootstrap raft cluster: %w", err)
	}
	return nil
}

// Apply proposes data to the log and waits until it is committed and applied locally. It returns the
// FSM's response for the entry.
func (n *Node) Apply(data []byte, timeout time.Duration) (uint64, any, error) {
	f := n.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		return 0, nil, mapRaftError(err)
	}
	return f.Index(), f.Response(), nil
}

// Barrier waits until every entry committed before it has been applied to the FSM. A new leader calls
// it before producing, so it builds on the committed head.
func (n *Node) Barrier(timeout time.Duration) error {
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		return fmt.Errorf("raft barrier failed: %w", mapRaftError(err))
	}
	return nil
}

// VerifyLeader confirms with a quorum that this node still leads.
func (n *Node) VerifyLeader() error {
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return mapRaftError(err)
	}
	return nil
}

// LeaderCh delivers true when this node becomes leader and false when it loses leadership. It has one
// consumer: the role manager.
func (n *Node) LeaderCh() <-chan bool { return n.raft.LeaderCh() }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == hraft.Leader }

// Leader returns the leader's ID and address as this node knows them.
func (n *Node) Leader() (id, address string) {
	addr, lid := n.raft.LeaderWithID()
	return string(lid), string(addr)
}

// Changes returns a channel closed at the next leadership, state or membership change.
func (n *Node) Changes() <-chan struct{} { return n.changes.Changed() }

// LeaderChanges counts how often this node has seen the leader change.
func (n *Node) LeaderChanges() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaderChanges
}

// Configuration returns the latest Raft configuration and its index.
func (n *Node) Configuration() (Configuration, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return Configuration{}, fmt.Errorf("cannot read raft configuration: %w", mapRaftError(err))
	}
	return toConfiguration(f.Configuration(), n.fsm.ConfigIndex()), nil
}

// loadSnapshotConfigIndex takes the configuration index from the newest snapshot: after a restore the
// log entries before it are gone, so the FSM never sees them.
func (n *Node) loadSnapshotConfigIndex() {
	metas, err := n.stores.snaps.List()
	if err != nil || len(metas) == 0 {
		return
	}
	n.fsm.raiseConfigIndex(metas[0].ConfigurationIndex)
}

func toConfiguration(c hraft.Configuration, index uint64) Configuration {
	out := Configuration{Index: index, Members: make([]Member, 0, len(c.Servers))}
	for _, s := range c.Servers {
		out.Members = append(out.Members, Member{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == hraft.Voter})
	}
	return out
}

// Suffrage names a server's suffrage the way the node API reports it.
func (n *Node) Suffrage(id string) string {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return ""
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return s.Suffrage.String()
		}
	}
	return ""
}

// AddMember adds a server, as a non-voter unless voter is set. prevIndex, when non-zero, must be the
// current configuration index. Adding a member that is already there with the same address succeeds
// without a change, so callers can retry.
func (n *Node) AddMember(id, address string, voter bool, prevIndex uint64) (Configuration, error) {
	n.membership.Lock()
	defer n.membership.Unlock()
	cur, err := n.changeableConfiguration(prevIndex)
	if err != nil {
		return cur, err
	}
	for _, m := range cur.Members {
		switch {
		case m.ID == id && m.Address == address && (m.Voter || !voter):
			return cur, nil
		case m.ID == id && m.Address != address:
			return cur, fmt.Errorf("%w: %s is already a member at %s", ErrMemberConflict, id, m.Address)
		case m.ID != id && m.Address == address:
			return cur, fmt.Errorf("%w: address %s is already used by %s", ErrMemberConflict, address, m.ID)
		}
	}
	// The compare-and-set check is ours (under the membership lock): hashicorp/raft compares against
	// its latest, possibly uncommitted, index, which it does not expose.
	var f hraft.IndexFuture
	if voter {
		f = n.raft.AddVoter(hraft.ServerID(id), hraft.ServerAddress(address), 0, 10*time.Second)
	} else {
		f = n.raft.AddNonvoter(hraft.ServerID(id), hraft.ServerAddress(address), 0, 10*time.Second)
	}
	if err := f.Error(); err != nil {
		return Configuration{}, fmt.Errorf("cannot add member %s: %w", id, mapRaftError(err))
	}
	return n.committedConfiguration(f.Index())
}

// changeableConfiguration is the configuration a membership change starts from: this node must lead,
// and prevIndex, when non-zero, must be its index. Callers hold the membership lock.
func (n *Node) changeableConfiguration(prevIndex uint64) (Configuration, error) {
	if !n.IsLeader() {
		return Configuration{}, ErrNotLeader
	}
	cur, err := n.Configuration()
	if err != nil {
		return Configuration{}, err
	}
	if prevIndex != 0 && prevIndex != cur.Index {
		return cur, fmt.Errorf("%w: given %d, current %d", ErrStaleConfiguration, prevIndex, cur.Index)
	}
	return cur, nil
}

// RemoveMember removes a server and returns once the removal is committed. Removing a server that is
// not a member succeeds without a change, so a retried removal is safe.
func (n *Node) RemoveMember(id string, prevIndex uint64) (Configuration, error) {
	n.membership.Lock()
	defer n.membership.Unlock()
	cur, err := n.changeableConfiguration(prevIndex)
	if err != nil {
		return cur, err
	}
	if _, ok := cur.Has(id); !ok {
		return cur, nil
	}
	if id == n.cfg.ID {
		return cur, fmt.Errorf("cannot remove member %s: it is the leader; transfer leadership first", id)
	}
	f := n.raft.RemoveServer(hraft.ServerID(id), 0, 10*time.Second)
	if err := f.Error(); err != nil {
		return Configuration{}, fmt.Errorf("cannot remove member %s: %w", id, mapRaftError(err))
	}
	return n.committedConfiguration(f.Index())
}

// committedConfiguration waits until the FSM has seen the configuration committed at index, so the
// index the caller gets back is the one the next compare-and-set will be checked against.
func (n *Node) committedConfiguration(index uint64) (Configuration, error) {
	if n.fsm.ConfigIndex() < index {
		if err := n.Barrier(10 * time.Second); err != nil {
			return Configuration{}, err
		}
	}
	return n.Configuration()
}

// TransferLeadership hands leadership to the voter id, or to the most up-to-date voter when id is empty,
// and waits until the transfer has happened.
func (n *Node) TransferLeadership(id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	var f hraft.Future
	if id == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		cur, err := n.Configuration()
		if err != nil {
			return err
		}
		m, ok := cur.Has(id)
		if !ok {
			return fmt.Errorf("%w: %s", ErrUnknownMember, id)
		}
		if !m.Voter {
			return fmt.Errorf("cannot transfer leadership to %s: it is not a voter yet", id)
		}
		if id == n.cfg.ID {
			return nil
		}
		f = n.raft.LeadershipTransferToServer(hraft.ServerID(id), hraft.ServerAddress(m.Address))
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("cannot transfer leadership: %w", mapRaftError(err))
	}
	return nil
}

// Progress is this server's Raft progress, for the status document and for autopilot.
type Progress struct {
	State             string
	Term              uint64
	CommitIndex       uint64
	AppliedIndex      uint64
	LastLogIndex      uint64
	LastLogTerm       uint64
	LastSnapshotIndex uint64
	// LastContact is when the leader was last heard from; zero on the leader and when never.
	LastContact time.Time
}

// Progress reads this server's Raft progress.
func (n *Node) Progress() Progress {
	stats := n.raft.Stats()
	p := Progress{
		State:        n.raft.State().String(),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		LastLogIndex: n.raft.LastIndex(),
	}
	p.LastLogTerm, _ = strconv.ParseUint(stats["last_log_term"], 10, 64)
	p.LastSnapshotIndex, _ = strconv.ParseUint(stats["last_snapshot_index"], 10, 64)
	if p.State != hraft.Leader.String() {
		p.LastContact = n.raft.LastContact()
	}
	return p
}

// AutopilotState is autopilot's latest view; nil unless this node leads and autopilot has run.
func (n *Node) AutopilotState() *autopilot.State {
	if !n.IsLeader() {
		return nil
	}
	return n.autopilot.GetState()
}

// Snapshot asks Raft to take a snapshot now.
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("cannot take raft snapshot: %w", err)
	}
	return nil
}

// Shutdown stops Raft, autopilot and the transport, and closes the stores.
func (n *Node) Shutdown() error {
	n.mu.Lock()
	if n.shutdownCalled {
		n.mu.Unlock()
		return nil
	}
	n.shutdownCalled = true
	n.mu.Unlock()
	n.stopAutopilot()
	// Shutdown waits for Raft's goroutines; if one is stuck, report it instead of hanging the process.
	result := make(chan error, 1)
	go func() { result <- n.raft.Shutdown().Error() }()
	var err error
	select {
	case err = <-result:
	case <-time.After(shutdownTimeout):
		return fmt.Errorf("raft did not shut down within %v", shutdownTimeout)
	}
	n.raft.DeregisterObserver(n.observer)
	close(n.done)
	n.wg.Wait()
	n.closeTransport()
	if cerr := n.stores.close(); cerr != nil && err == nil {
		err = cerr
	}
	n.changes.Notify()
	if err != nil {
		return fmt.Errorf("cannot shut raft down: %w", err)
	}
	return nil
}

func (n *Node) closeTransport() {
	if c, ok := n.transport.(interface{ Close() error }); ok {
		_ = c.Close()
	}
}

// watchLeadership follows Raft's observations: it runs autopilot only while leading and wakes every
// status watcher.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	lastLeader := ""
	for {
		select {
		case <-n.done:
			return
		case <-n.obsCh:
		}
		leaderID, _ := n.Leader()
		n.mu.Lock()
		if leaderID != lastLeader && leaderID != "" {
			n.leaderChanges++
		}
		n.mu.Unlock()
		lastLeader = leaderID
		if n.IsLeader() {
			n.startAutopilot()
		} else {
			n.stopAutopilot()
		}
		n.changes.Notify()
	}
}

func (n *Node) startAutopilot() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.autopilotStop != nil || n.shutdownCalled {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.autopilotStop = cancel
	n.autopilot.Start(ctx)
}

func (n *Node) stopAutopilot() {
	n.mu.Lock()
	cancel := n.autopilotStop
	n.autopilotStop = nil
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-n.autopilot.Stop()
	}
}

// mapRaftError turns hashicorp/raft's errors into ours where callers must tell them apart.
func mapRaftError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hraft.ErrNotLeader), errors.Is(err, hraft.ErrLeadershipLost),
		errors.Is(err, hraft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case strings.HasPrefix(err.Error(), "configuration changed since"):
		return fmt.Errorf("%w: %v", ErrStaleConfiguration, err)
	}
	return err
}
