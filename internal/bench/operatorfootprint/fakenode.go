package operatorfootprint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/seqops/sequencer-operator/pkg/nodeapi"
	sraft "github.com/seqops/sequencer-operator/pkg/raft"
)

// The fake Raft group stands in for the three node processes of one SequencerCluster. It keeps the state
// the operator reads and changes through the node API (configuration and its index, leader, term, commit
// index) and follows the real node's rules for it: the pod named by --bootstrap-id founds a one-voter cluster
// when it starts with initial-cluster-state "new" and no state; every other pod waits, with no configuration,
// until the leader adds it; a non-voter is promoted after the autopilot stabilization time; membership calls
// go to the leader only. It has no log, no chain and no transactions: the heights it reports advance with the
// block time as a producing leader's would.

// Defaults of the real node that the fake copies.
const (
	fakeBlockTime     = 100 * time.Millisecond
	fakeStabilization = 2 * time.Second // cmd/node's --autopilot-stabilization-time default
)

// errNoChain answers the transaction and block calls, which the operator never makes.
var errNoChain = fmt.Errorf("%w: this fake node keeps no chain", nodeapi.ErrUnavailable)

// group is one cluster's fake Raft group.
type group struct {
	// peerDomain is <peers>.<namespace>.svc.cluster.local; raft and API addresses are <pod>.<peerDomain>:port.
	peerDomain string
	promote    time.Duration
	changes    *sraft.Signal
	clock      func() time.Time

	mu     sync.Mutex
	nodes  map[string]*node
	config nodeapi.Configuration
	leader string
	term   uint64
	commit uint64
	// born is when the group was bootstrapped; heights count blocks since then.
	born time.Time
}

// node is one pod's fake node and the nodeapi.Backend its API server serves.
type node struct {
	g  *group
	id string
	// up is true while the pod runs; hasState is true once the node founded or joined the group.
	up       bool
	hasState bool
}

func newGroup(peerDomain string, clock func() time.Time) *group {
	return &group{peerDomain: peerDomain, promote: fakeStabilization, changes: sraft.NewSignal(), clock: clock, nodes: map[string]*node{}}
}

// node returns the fake node of pod id, creating it down and empty.
func (g *group) node(id string) *node {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.nodes[id]
	if n == nil {
		n = &node{g: g, id: id}
		g.nodes[id] = n
	}
	return n
}

func (g *group) raftAddress(id string) string { return fmt.Sprintf("%s.%s:7000", id, g.peerDomain) }
func (g *group) apiURL(id string) string      { return fmt.Sprintf("http://%s.%s:8080", id, g.peerDomain) }

// start is the pod's container starting with the flags and the ConfigMap value the kubelet gave it.
func (n *node) start(bootstrapID, initialState string) {
	g := n.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if n.up {
		return
	}
	n.up = true
	if g.memberIndex(n.id) >= 0 {
		n.hasState = true
	}
	if !n.hasState && n.id == bootstrapID && initialState == "new" && len(g.config.Servers) == 0 {
		n.hasState = true
		g.config = nodeapi.Configuration{Servers: []nodeapi.Member{{ID: n.id, Address: g.raftAddress(n.id), Suffrage: nodeapi.SuffrageVoter}}}
		g.changeConfig()
		g.born = g.clock()
	}
	g.elect()
	g.changes.Notify()
}

// stop is the pod's container ending; a leader's group elects another leader if a quorum is left.
func (n *node) stop() {
	g := n.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if !n.up {
		return
	}
	n.up = false
	if g.leader == n.id {
		g.leader = ""
		g.elect()
	}
	g.changes.Notify()
}

// memberIndex is the position of id in the configuration, -1 when absent; callers hold g.mu.
func (g *group) memberIndex(id string) int {
	return slices.IndexFunc(g.config.Servers, func(m nodeapi.Member) bool { return m.ID == id })
}

// changeConfig commits a new configuration at the next index; callers hold g.mu.
func (g *group) changeConfig() {
	g.config.Index = max(g.config.Index, g.commit) + 1
	g.commit = g.config.Index
}

// elect picks the lowest-named up voter with state when a quorum of voters is up; callers hold g.mu.
func (g *group) elect() {
	if g.leader != "" {
		return
	}
	voters, up := 0, []string{}
	for _, m := range g.config.Servers {
		if m.Suffrage != nodeapi.SuffrageVoter {
			continue
		}
		voters++
		if n := g.nodes[m.ID]; n != nil && n.up && n.hasState {
			up = append(up, m.ID)
		}
	}
	if voters > 0 && len(up) >= voters/2+1 {
		slices.Sort(up)
		g.leader = up[0]
		g.term++
	}
}

// promoteLater is the fake autopilot: a non-voter that is up becomes a voter after the stabilization time.
func (g *group) promoteLater(id string) {
	time.AfterFunc(g.promote, func() {
		if !g.tryPromote(id) {
			g.promoteLater(id)
		}
	})
}

// tryPromote makes id a voter; false means it is down and the promotion must wait.
func (g *group) tryPromote(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := g.memberIndex(id)
	if i < 0 || g.config.Servers[i].Suffrage == nodeapi.SuffrageVoter {
		return true
	}
	if n := g.nodes[id]; n == nil || !n.up {
		return false
	}
	g.config.Servers[i].Suffrage = nodeapi.SuffrageVoter
	g.changeConfig()
	g.changes.Notify()
	return true
}

func (g *group) cloneConfig() nodeapi.Configuration {
	c := g.config
	c.Servers = slices.Clone(g.config.Servers)
	return c
}

// Status implements nodeapi.Backend.
func (n *node) Status() nodeapi.Status {
	g := n.g
	g.mu.Lock()
	defer g.mu.Unlock()
	st := nodeapi.Status{NodeID: n.id, Address: g.raftAddress(n.id), State: nodeapi.StateFollower, Version: "fake"}
	if !n.up {
		st.State = nodeapi.StateShutdown
		return st
	}
	if !n.hasState || g.memberIndex(n.id) < 0 {
		return st
	}
	st.Term = g.term
	st.CommitIndex, st.AppliedIndex, st.LastLogIndex, st.LastLogTerm = g.commit, g.commit, g.config.Index, g.term
	st.Height = uint64(g.clock().Sub(g.born) / fakeBlockTime)
	st.Configuration = g.cloneConfig()
	if g.leader != "" {
		st.LeaderID, st.LeaderAddress, st.LeaderAPI = g.leader, g.raftAddress(g.leader), g.apiURL(g.leader)
	}
	if g.leader != n.id {
		now := g.clock()
		st.LastContact = &now
		return st
	}
	st.State, st.Producing = nodeapi.StateLeader, true
	ap := &nodeapi.AutopilotHealth{Healthy: true}
	voters, healthy := 0, 0
	for _, m := range g.config.Servers {
		o := g.nodes[m.ID]
		ok := o != nil && o.up && o.hasState
		ap.Healthy = ap.Healthy && ok
		ap.Servers = append(ap.Servers, nodeapi.ServerHealth{ID: m.ID, Healthy: ok, Voter: m.Suffrage == nodeapi.SuffrageVoter,
			LastIndex: g.commit, LastTerm: g.term})
		if m.Suffrage == nodeapi.SuffrageVoter {
			voters++
			if ok {
				healthy++
			}
		}
	}
	ap.FailureTolerance = max(healthy-(voters/2+1), 0)
	st.Autopilot = ap
	return st
}

// Changes implements nodeapi.Backend: one signal for the group, as any change may change every node's document.
func (n *node) Changes() <-chan struct{} { return n.g.changes.Changed() }

// Members implements nodeapi.Backend.
func (n *node) Members() (nodeapi.Configuration, error) {
	g := n.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if !n.hasState {
		return nodeapi.Configuration{}, fmt.Errorf("%w: no raft configuration yet", nodeapi.ErrUnavailable)
	}
	return g.cloneConfig(), nil
}

// configIndexError carries the current index on a 409, as the real node's does.
type configIndexError struct {
	err   error
	index uint64
}

func (e *configIndexError) Error() string       { return e.err.Error() }
func (e *configIndexError) Unwrap() error       { return e.err }
func (e *configIndexError) ConfigIndex() uint64 { return e.index }

// leading checks the call may change membership here; callers hold g.mu.
func (n *node) leading(configIndex uint64) error {
	g := n.g
	if g.leader != n.id {
		return fmt.Errorf("%w: %s leads", nodeapi.ErrNotLeader, g.leader)
	}
	if configIndex != 0 && configIndex != g.config.Index {
		return &configIndexError{err: fmt.Errorf("%w: configuration index is %d, not %d", nodeapi.ErrConflict, g.config.Index, configIndex), index: g.config.Index}
	}
	return nil
}

// AddMember implements nodeapi.Backend.
func (n *node) AddMember(req nodeapi.AddMemberRequest) (nodeapi.Configuration, error) {
	g := n.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := n.leading(req.ConfigIndex); err != nil {
		return nodeapi.Configuration{}, err
	}
	if g.memberIndex(req.ID) >= 0 {
		return nodeapi.Configuration{}, &configIndexError{err: fmt.Errorf("%w: %s is already a member", nodeapi.ErrConflict, req.ID), index: g.config.Index}
	}
	suffrage := nodeapi.SuffrageNonvoter
	if req.Voter {
		suffrage = nodeapi.SuffrageVoter
	}
	g.config.Servers = append(g.config.Servers, nodeapi.Member{ID: req.ID, Address: req.Address, Suffrage: suffrage})
	g.changeConfig()
	if o := g.nodes[req.ID]; o != nil && o.up {
		o.hasState = true
	}
	if !req.Voter {
		g.promoteLater(req.ID)
	}
	g.changes.Notify()
	return g.cloneConfig(), nil
}

// RemoveMember implements nodeapi.Backend.
func (n *node) RemoveMember(id string, configIndex uint64) (nodeapi.Configuration, error) {
	g := n.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := n.leading(configIndex); err != nil {
		return nodeapi.Configuration{}, err
	}
	i := g.memberIndex(id)
	if i < 0 {
		return nodeapi.Configuration{}, fmt.Errorf("%w: %s is not a member", nodeapi.ErrNotFound, id)
	}
	g.config.Servers = slices.Delete(g.config.Servers, i, i+1)
	g.changeConfig()
	if o := g.nodes[id]; o != nil {
		o.hasState = false
	}
	if id == g.leader {
		g.leader = ""
		g.elect()
	}
	g.changes.Notify()
	return g.cloneConfig(), nil
}

// TransferLeadership implements nodeapi.Backend.
func (n *node) TransferLeadership(id string) (nodeapi.TransferResponse, error) {
	g := n.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := n.leading(0); err != nil {
		return nodeapi.TransferResponse{}, err
	}
	if id == "" {
		for _, m := range g.config.Servers {
			if o := g.nodes[m.ID]; m.ID != n.id && m.Suffrage == nodeapi.SuffrageVoter && o != nil && o.up {
				id = m.ID
				break
			}
		}
	}
	i := g.memberIndex(id)
	if i < 0 || id == n.id || g.config.Servers[i].Suffrage != nodeapi.SuffrageVoter || g.nodes[id] == nil || !g.nodes[id].up {
		return nodeapi.TransferResponse{}, fmt.Errorf("%w: %q is not another up voter", nodeapi.ErrInvalid, id)
	}
	g.leader = id
	g.term++
	g.changes.Notify()
	return nodeapi.TransferResponse{LeaderID: id, LeaderAddress: g.raftAddress(id)}, nil
}

// SubmitTx implements nodeapi.Backend.
func (n *node) SubmitTx(context.Context, []byte, bool) (nodeapi.TxResponse, error) {
	return nodeapi.TxResponse{}, errNoChain
}

// Tx implements nodeapi.Backend.
func (n *node) Tx([]byte) (nodeapi.TxResponse, error) { return nodeapi.TxResponse{}, errNoChain }

// Block implements nodeapi.Backend.
func (n *node) Block(uint64) (*nodeapi.Block, []byte, error) { return nil, nil, errNoChain }

// LeaderAPI implements nodeapi.Backend.
func (n *node) LeaderAPI() string {
	g := n.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.leader == "" || !n.hasState {
		return ""
	}
	return g.apiURL(g.leader)
}

// Healthy implements nodeapi.Backend.
func (n *node) Healthy() error {
	n.g.mu.Lock()
	defer n.g.mu.Unlock()
	if !n.up {
		return errors.New("the node is stopped")
	}
	return nil
}

// Ready implements nodeapi.Backend with the real node's rule: a member that knows a leader.
func (n *node) Ready() error {
	g := n.g
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case !n.up:
		return errors.New("the node is stopped")
	case !n.hasState || g.memberIndex(n.id) < 0:
		return errors.New("not a member of the raft configuration yet")
	case g.leader == "":
		return errors.New("no leader known")
	}
	return nil
}
