package sequencer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
	sraft "github.com/seqops/sequencer-operator/pkg/raft"
)

// The node is the node API's backend.
var _ nodeapi.Backend = (*Node)(nil)

// Changes returns a channel closed at the next change of the node's status.
func (n *Node) Changes() <-chan struct{} { return n.changes.Changed() }

// Members implements nodeapi.Backend.
func (n *Node) Members() (nodeapi.Configuration, error) {
	cfg, err := n.raft.Configuration()
	if err != nil {
		return nodeapi.Configuration{}, fmt.Errorf("%w: %v", nodeapi.ErrUnavailable, err)
	}
	return n.toAPIConfiguration(cfg), nil
}

func (n *Node) toAPIConfiguration(cfg sraft.Configuration) nodeapi.Configuration {
	out := nodeapi.Configuration{Index: cfg.Index, Servers: make([]nodeapi.Member, 0, len(cfg.Members))}
	for _, m := range cfg.Members {
		suffrage := nodeapi.SuffrageNonvoter
		if m.Voter {
			suffrage = nodeapi.SuffrageVoter
		}
		out.Servers = append(out.Servers, nodeapi.Member{ID: m.ID, Address: m.Address, Suffrage: suffrage})
	}
	return out
}

// AddMember implements nodeapi.Backend.
func (n *Node) AddMember(req nodeapi.AddMemberRequest) (nodeapi.Configuration, error) {
	n.log.Info("Adding member", zap.String("id", req.ID), zap.String("address", req.Address), zap.Bool("voter", req.Voter))
	cfg, err := n.raft.AddMember(req.ID, req.Address, req.Voter, req.ConfigIndex)
	if err != nil {
		return nodeapi.Configuration{}, membershipError(err, cfg.Index)
	}
	n.changes.Notify()
	return n.toAPIConfiguration(cfg), nil
}

// RemoveMember implements nodeapi.Backend.
func (n *Node) RemoveMember(id string, configIndex uint64) (nodeapi.Configuration, error) {
	cfg, err := n.raft.RemoveMember(id, configIndex)
	if err != nil {
		return nodeapi.Configuration{}, membershipError(err, cfg.Index)
	}
	n.changes.Notify()
	return n.toAPIConfiguration(cfg), nil
}

// TransferLeadership implements nodeapi.Backend. It goes through the role manager so the producer
// stops before the transfer and resumes if it fails.
func (n *Node) TransferLeadership(id string) (nodeapi.TransferResponse, error) {
	if err := n.manager.Transfer(id); err != nil {
		return nodeapi.TransferResponse{}, membershipError(err, 0)
	}
	// The transfer returns once the target has been told to campaign; wait briefly for its win so the
	// answer names the new leader.
	deadline := time.Now().Add(2 * time.Second)
	for {
		lid, laddr := n.raft.Leader()
		if (lid != "" && lid != n.cfg.ID) || time.Now().After(deadline) {
			return nodeapi.TransferResponse{LeaderID: lid, LeaderAddress: laddr}, nil
		}
		select {
		case <-n.raft.Changes():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type configIndexError struct {
	err   error
	index uint64
}

func (e *configIndexError) Error() string       { return e.err.Error() }
func (e *configIndexError) Unwrap() error       { return e.err }
func (e *configIndexError) ConfigIndex() uint64 { return e.index }

func membershipError(err error, index uint64) error {
	switch {
	case errors.Is(err, sraft.ErrNotLeader):
		return fmt.Errorf("%w: %v", nodeapi.ErrNotLeader, err)
	case errors.Is(err, sraft.ErrStaleConfiguration):
		return &configIndexError{err: fmt.Errorf("%w: %v", nodeapi.ErrConflict, err), index: index}
	case errors.Is(err, sraft.ErrMemberConflict):
		return fmt.Errorf("%w: %v", nodeapi.ErrConflict, err)
	case errors.Is(err, sraft.ErrUnknownMember):
		return fmt.Errorf("%w: %v", nodeapi.ErrNotFound, err)
	}
	return err
}

// SubmitTx implements nodeapi.Backend: the transaction goes into the leader's mempool and, with wait,
// the answer comes once a committed block holds it.
func (n *Node) SubmitTx(ctx context.Context, tx []byte, wait bool) (nodeapi.TxResponse, error) {
	hash := chain.TxHash(tx)
	resp := nodeapi.TxResponse{Hash: hex.EncodeToString(hash), Status: nodeapi.TxPending}
	if h, ok := n.chain.TxHeight(hash); ok {
		resp.Status, resp.Height = nodeapi.TxCommitted, h
		return resp, nil
	}
	if !n.manager.Producing() {
		return resp, fmt.Errorf("%w: transactions go to the leader", nodeapi.ErrNotLeader)
	}
	// Register before adding, and look at the chain again after, so a commit in between is not missed.
	ch, cancel := n.waiters.wait(hash)
	defer cancel()
	if _, err := n.pool.Add(tx); err != nil && !errors.Is(err, chain.ErrDuplicateTx) {
		switch {
		case errors.Is(err, chain.ErrMempoolFull):
			return resp, fmt.Errorf("%w: %v; retry later", nodeapi.ErrBusy, err)
		default:
			return resp, fmt.Errorf("%w: %v", nodeapi.ErrInvalid, err)
		}
	}
	n.metrics.txsSubmitted.Inc()
	if h, ok := n.chain.TxHeight(hash); ok {
		resp.Status, resp.Height = nodeapi.TxCommitted, h
		return resp, nil
	}
	if !wait {
		return resp, nil
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return resp, fmt.Errorf("%w: transaction %s not committed: %v; resubmit it (a committed transaction is never included twice)", nodeapi.ErrUnavailable, resp.Hash, r.err)
		}
		resp.Status, resp.Height = nodeapi.TxCommitted, r.height
		return resp, nil
	case <-ctx.Done():
		return resp, fmt.Errorf("%w: transaction %s not committed yet; check GET /tx/%s", nodeapi.ErrTimeout, resp.Hash, resp.Hash)
	}
}

// Tx implements nodeapi.Backend.
func (n *Node) Tx(hash []byte) (nodeapi.TxResponse, error) {
	resp := nodeapi.TxResponse{Hash: hex.EncodeToString(hash)}
	if h, ok := n.chain.TxHeight(hash); ok {
		resp.Status, resp.Height = nodeapi.TxCommitted, h
		return resp, nil
	}
	return resp, fmt.Errorf("%w: transaction %s is not in a committed block on this node", nodeapi.ErrNotFound, resp.Hash)
}

// Block implements nodeapi.Backend.
func (n *Node) Block(height uint64) (*nodeapi.Block, []byte, error) {
	if height == 0 {
		height = n.chain.Head().Height
		if height == 0 {
			return nil, nil, fmt.Errorf("%w: the chain has no blocks yet", nodeapi.ErrNotFound)
		}
	}
	b, err := n.chain.Block(height)
	if err != nil {
		if errors.Is(err, chain.ErrNotFound) {
			return nil, nil, fmt.Errorf("%w: block %d is not stored on this node (head %d)", nodeapi.ErrNotFound, height, n.chain.Head().Height)
		}
		return nil, nil, err
	}
	raw, err := chain.MarshalBlock(b)
	if err != nil {
		return nil, nil, err
	}
	return BlockJSON(b), raw, nil
}

// BlockJSON is the node API's JSON form of a block.
func BlockJSON(b *chainpb.Block) *nodeapi.Block {
	h := b.GetHeader()
	return &nodeapi.Block{
		Height:     h.GetHeight(),
		Hash:       hex.EncodeToString(chain.BlockHash(b)),
		ParentHash: hex.EncodeToString(h.GetParentHash()),
		Time:       time.Unix(0, h.GetTimeUnixNano()).UTC(),
		ChainID:    h.GetChainId(),
		TxRoot:     hex.EncodeToString(h.GetTxRoot()),
		StateRoot:  hex.EncodeToString(h.GetStateRoot()),
		Proposer:   hex.EncodeToString(h.GetProposer()),
		Signature:  hex.EncodeToString(b.GetSignature()),
		Txs:        b.GetTxs(),
	}
}

// LeaderAPI implements nodeapi.Backend.
func (n *Node) LeaderAPI() string {
	_, addr := n.raft.Leader()
	if addr == "" {
		return ""
	}
	return n.peerAPI(addr)
}

// Healthy implements nodeapi.Backend.
func (n *Node) Healthy() error {
	if err := n.fsm.Err(); err != nil {
		return fmt.Errorf("chain halted: %w", err)
	}
	return nil
}

// Ready implements nodeapi.Backend: a member with a known leader that has applied what it knows is
// committed and holds its full history.
func (n *Node) Ready() error {
	if err := n.Healthy(); err != nil {
		return err
	}
	cfg, err := n.raft.Configuration()
	if err != nil {
		return err
	}
	if _, ok := cfg.Has(n.cfg.ID); !ok {
		return errors.New("not a member of the raft configuration yet")
	}
	if lid, _ := n.raft.Leader(); lid == "" {
		return errors.New("no leader known")
	}
	st := n.Status()
	if st.CatchingUp {
		return fmt.Errorf("catching up: %d entries to apply, backfilling %v", st.Lag, n.backfill.active())
	}
	return nil
}
