// Package nodeapi is the node's HTTP API: the documents it serves, the server handlers and a typed client.
// The node, the operator and the kubectl plugin share it, so the wire contract lives in one place.
package nodeapi

import "time"

// Raft states as reported in Status.State.
const (
	StateLeader    = "Leader"
	StateFollower  = "Follower"
	StateCandidate = "Candidate"
	StateShutdown  = "Shutdown"
)

// Suffrage values of a Raft member.
const (
	SuffrageVoter    = "Voter"
	SuffrageNonvoter = "Nonvoter"
	SuffrageStaging  = "Staging"
)

// Status is the document served by GET /raft and streamed by GET /raft/watch.
type Status struct {
	// NodeID is this node's Raft server ID.
	NodeID string `json:"nodeId"`
	// Address is the Raft address peers dial to reach this node.
	Address string `json:"address"`
	// State is the Raft state: Leader, Follower, Candidate or Shutdown.
	State string `json:"state"`
	// Term is the current Raft term.
	Term uint64 `json:"term"`
	// LeaderID is the ID of the leader this node knows of, empty when none.
	LeaderID string `json:"leaderId,omitempty"`
	// LeaderAddress is the Raft address of that leader.
	LeaderAddress string `json:"leaderAddress,omitempty"`
	// LeaderAPI is the HTTP base URL of the leader's node API, when known.
	LeaderAPI string `json:"leaderApi,omitempty"`
	// LastContact is when this node last heard from the leader (zero on the leader itself).
	LastContact *time.Time `json:"lastContact,omitempty"`
	// CommitIndex is the highest Raft log index known to be committed.
	CommitIndex uint64 `json:"commitIndex"`
	// AppliedIndex is the highest Raft log index applied to the chain.
	AppliedIndex uint64 `json:"appliedIndex"`
	// LastLogIndex is the highest index in this node's Raft log.
	LastLogIndex uint64 `json:"lastLogIndex"`
	// LastLogTerm is the term of the last entry in this node's Raft log.
	LastLogTerm uint64 `json:"lastLogTerm"`
	// LastSnapshotIndex is the index of the latest Raft snapshot.
	LastSnapshotIndex uint64 `json:"lastSnapshotIndex"`
	// Height is the height of this node's committed chain head.
	Height uint64 `json:"height"`
	// HeadHash is the hex hash of that head block.
	HeadHash string `json:"headHash,omitempty"`
	// CatchingUp is true while this node's applied index trails the commit index or history is being backfilled.
	CatchingUp bool `json:"catchingUp"`
	// Rejoining is true while this node catches up after starting with no data into a cluster that
	// already existed; until then it refuses to vote or lead.
	Rejoining bool `json:"rejoining,omitempty"`
	// Lag is how many committed log entries this node has not applied yet.
	Lag uint64 `json:"lag"`
	// Producing is true while this node is the leader and its block producer runs.
	Producing bool `json:"producing"`
	// Configuration is the Raft membership as this node knows it.
	Configuration Configuration `json:"configuration"`
	// Autopilot is the leader's view of member health; nil on followers.
	Autopilot *AutopilotHealth `json:"autopilot,omitempty"`
	// Version is the node software version.
	Version string `json:"version"`
}

// Configuration is a Raft configuration and the log index it was committed at.
type Configuration struct {
	// Index is the log index of this configuration; pass it as configIndex for compare-and-set.
	Index uint64 `json:"index"`
	// Servers are the members.
	Servers []Member `json:"servers"`
}

// Member is one Raft server.
type Member struct {
	// ID is the server's Raft ID (the pod name in Kubernetes).
	ID string `json:"id"`
	// Address is the server's Raft address.
	Address string `json:"address"`
	// Suffrage is Voter, Nonvoter or Staging.
	Suffrage string `json:"suffrage"`
}

// AutopilotHealth is raft-autopilot's view of the cluster, served by the leader.
type AutopilotHealth struct {
	// Healthy is true when every server is healthy.
	Healthy bool `json:"healthy"`
	// FailureTolerance is how many voters can fail without losing quorum.
	FailureTolerance int `json:"failureTolerance"`
	// Servers is the health of each server.
	Servers []ServerHealth `json:"servers"`
}

// ServerHealth is autopilot's view of one server.
type ServerHealth struct {
	ID          string     `json:"id"`
	Healthy     bool       `json:"healthy"`
	Voter       bool       `json:"voter"`
	LastIndex   uint64     `json:"lastIndex"`
	LastTerm    uint64     `json:"lastTerm"`
	StableSince *time.Time `json:"stableSince,omitempty"`
}

// AddMemberRequest is the body of POST /raft/members.
type AddMemberRequest struct {
	// ID is the new member's Raft ID.
	ID string `json:"id"`
	// Address is the new member's Raft address (a stable DNS name in Kubernetes).
	Address string `json:"address"`
	// Voter adds the member as a voter at once; the default adds a non-voter that autopilot promotes.
	Voter bool `json:"voter,omitempty"`
	// ConfigIndex, when non-zero, makes the change conditional on the current configuration index (409 if stale).
	ConfigIndex uint64 `json:"configIndex,omitempty"`
}

// MembershipResponse answers a membership change with the resulting configuration.
type MembershipResponse struct {
	Configuration Configuration `json:"configuration"`
}

// TransferRequest is the body of POST /raft/transfer-leadership.
type TransferRequest struct {
	// ID names the member to hand leadership to; empty picks the most caught-up voter.
	ID string `json:"id,omitempty"`
}

// TransferResponse reports the leader after a transfer.
type TransferResponse struct {
	LeaderID      string `json:"leaderId"`
	LeaderAddress string `json:"leaderAddress"`
}

// TxResponse answers POST /tx and GET /tx/{hash}.
type TxResponse struct {
	// Hash is the hex hash of the transaction.
	Hash string `json:"hash"`
	// Status is "committed" once the transaction is in a committed block, "pending" before.
	Status string `json:"status"`
	// Height is the committed block's height, when committed.
	Height uint64 `json:"height,omitempty"`
}

// Transaction statuses.
const (
	TxCommitted = "committed"
	TxPending   = "pending"
)

// Block is the JSON form of a committed block.
type Block struct {
	Height     uint64    `json:"height"`
	Hash       string    `json:"hash"`
	ParentHash string    `json:"parentHash"`
	Time       time.Time `json:"time"`
	ChainID    string    `json:"chainId"`
	TxRoot     string    `json:"txRoot"`
	StateRoot  string    `json:"stateRoot"`
	Proposer   string    `json:"proposer"`
	Signature  string    `json:"signature"`
	// Txs are the transactions, base64 (encoding/json's []byte form).
	Txs [][]byte `json:"txs"`
}

// Error is the body of every error response.
type Error struct {
	// Message says what went wrong and, for client errors, what to fix.
	Message string `json:"message"`
	// LeaderID and LeaderAddress name the leader when a leader-only call reached a follower that could not forward it.
	LeaderID  string `json:"leaderId,omitempty"`
	LeaderAPI string `json:"leaderApi,omitempty"`
	// ConfigIndex is the current configuration index on a 409 conflict.
	ConfigIndex uint64 `json:"configIndex,omitempty"`
}

// Headers and media types of the API.
const (
	// ContentTypeProtobuf selects the protobuf encoding of blocks through the Accept header.
	ContentTypeProtobuf = "application/x-protobuf"
	// ForwardedHeader marks a request a follower forwarded to the leader, so it is never forwarded twice.
	ForwardedHeader = "X-Seqops-Forwarded"
)
