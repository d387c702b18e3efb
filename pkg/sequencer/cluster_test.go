package sequencer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
	"github.com/seqops/sequencer-operator/pkg/sequencer"
)

func chainHash(b *chainpb.Block) []byte { return chain.BlockHash(b) }

func TestThreeNodesProduceOneChain(t *testing.T) {
	c := newTestCluster(t, "n0", "n1", "n2")
	c.form()
	leader := c.leader()
	// A transaction sent to a follower is forwarded to the leader and acknowledged after commit.
	follower := c.followers(leader.id)[0]
	resp, err := follower.client.SubmitTx(context.Background(), []byte("set colour blue"), true)
	if err != nil {
		t.Fatalf("submit through follower: %v", err)
	}
	if resp.Status != nodeapi.TxCommitted || resp.Height == 0 {
		t.Fatalf("tx not acknowledged as committed: %+v", resp)
	}
	c.waitHeight(c.followers(""), resp.Height+5)
	for _, n := range c.followers("") {
		got, err := n.client.Tx(context.Background(), resp.Hash)
		if err != nil || got.Height != resp.Height {
			t.Fatalf("%s: tx %s at %+v, %v; want height %d", n.id, resp.Hash, got, err, resp.Height)
		}
		if v, ok := n.node.Chain().Get([]byte("colour")); !ok || string(v) != "blue" {
			t.Fatalf("%s: state colour=%q, %v", n.id, v, ok)
		}
	}
	c.assertOneHashPerHeight(c.followers(""))
}

func TestLeaderStopChainContinuesFromCommittedHead(t *testing.T) {
	c := newTestCluster(t, "n0", "n1", "n2")
	c.form()
	old := c.leader()
	c.waitHeight(c.followers(""), 10)
	committed := old.node.Chain().Head()
	old.node.Kill()
	survivors := c.followers(old.id)
	next := c.leader()
	if next.id == old.id {
		t.Fatal("the killed node still leads")
	}
	c.waitHeight(survivors, committed.Height+10)
	// The new leader built on everything the old one committed: its chain holds the old head.
	b, err := next.node.Chain().Block(committed.Height)
	if err != nil {
		t.Fatalf("new leader lacks the old committed head %d: %v", committed.Height, err)
	}
	if fmt.Sprintf("%x", chain.BlockHash(b)) != fmt.Sprintf("%x", committed.Hash) {
		t.Fatalf("new leader's block %d differs from the committed one", committed.Height)
	}
	c.assertOneHashPerHeight(survivors)
}

func TestIsolatedLeaderCommitsNothing(t *testing.T) {
	c := newTestCluster(t, "n0", "n1", "n2")
	c.form()
	old := c.leader()
	c.waitHeight(c.followers(""), 5)
	c.partition(old)
	cutAt := old.node.Chain().Head().Height

	// Submissions to the cut-off leader are never acknowledged as committed.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if resp, err := old.node.SubmitTx(ctx, []byte("set lost yes"), true); err == nil {
		t.Fatalf("isolated leader acknowledged a transaction: %+v", resp)
	}
	majority := c.followers(old.id)
	c.eventually(5*time.Second, "old leader stops producing", func() error {
		if old.node.Status().Producing {
			return errors.New("still producing")
		}
		return nil
	})
	newLeader := c.leader()
	if newLeader.id == old.id {
		t.Fatal("isolated node still leads")
	}
	c.waitHeight(majority, cutAt+10)
	if h := old.node.Chain().Head().Height; h > cutAt+1 {
		t.Fatalf("isolated leader's chain grew from %d to %d without a quorum", cutAt, h)
	}
	// Everything the isolated node serves is on the majority's chain: no uncommitted block leaked.
	c.assertOneHashPerHeight(append([]*testNode{old}, majority...))
	if _, ok := old.node.Chain().Get([]byte("lost")); ok {
		t.Fatal("an unacknowledged transaction's write is visible on the isolated node")
	}

	c.heal(old)
	target := newLeader.node.Chain().Head().Height + 5
	c.waitHeight(c.followers(""), target)
	if old.node.Status().State == nodeapi.StateLeader && old != c.leader() {
		t.Fatal("healed node claims leadership")
	}
	c.assertOneHashPerHeight(c.followers(""))
}

func TestTransferLeavesNoLongGap(t *testing.T) {
	// A longer block time than the other tests: the bound is about the transfer, not about how the
	// scheduler treats a 50 ms timer on a busy machine.
	const blockTime = 200 * time.Millisecond
	slow := func(cfg *sequencer.Config) { cfg.Producer.BlockTime = blockTime }
	c := &testCluster{t: t, key: newKey(t), nodes: map[string]*testNode{}, apis: map[string]string{}}
	for i, id := range []string{"n0", "n1", "n2"} {
		c.addNodeWith(id, i == 0, slow)
	}
	c.form()
	old := c.leader()
	c.waitHeight(c.followers(""), 3)
	before := old.node.Chain().Head().Height
	resp, err := c.followers(old.id)[0].client.TransferLeadership(context.Background(), "")
	if err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if resp.LeaderID == old.id || resp.LeaderID == "" {
		t.Fatalf("transfer answered leader %q", resp.LeaderID)
	}
	next := c.leader()
	c.waitHeight(c.followers(""), before+4)
	if next.id == old.id {
		t.Fatal("leadership did not move")
	}
	// The blocks around the hand-over: the old leader's last ones and the new leader's first ones.
	var prev time.Time
	for h := before - 1; h <= before+4; h++ {
		b, _ := next.node.Chain().Block(h)
		ts := time.Unix(0, b.GetHeader().GetTimeUnixNano())
		if !prev.IsZero() && ts.Sub(prev) > 2*blockTime {
			t.Fatalf("gap of %v before block %d (transfer at %d), more than two block times", ts.Sub(prev), h, before)
		}
		prev = ts
	}
	c.assertOneHashPerHeight(c.followers(""))
}

func TestNonVoterIsPromotedAndRemovedMemberStopsReceiving(t *testing.T) {
	c := newTestCluster(t, "n0", "n1", "n2")
	c.form() // adds n1 and n2 as non-voters; form waits for autopilot to promote them
	leader := c.leader()

	n3 := c.addNode("n3", false)
	cfg, err := leader.client.AddMember(context.Background(), nodeapi.AddMemberRequest{ID: "n3", Address: raftAddr("n3")})
	if err != nil {
		t.Fatal(err)
	}
	if m := member(*cfg, "n3"); m == nil || m.Suffrage != nodeapi.SuffrageNonvoter {
		t.Fatalf("n3 should join as a non-voter: %+v", cfg.Servers)
	}
	c.eventually(10*time.Second, "n3 promoted to voter", func() error {
		cfg, err := leader.client.Members(context.Background())
		if err != nil {
			return err
		}
		if m := member(*cfg, "n3"); m == nil || m.Suffrage != nodeapi.SuffrageVoter {
			return fmt.Errorf("n3: %+v", m)
		}
		return nil
	})

	if _, err := leader.client.RemoveMember(context.Background(), "n3", 0); err != nil {
		t.Fatalf("remove n3: %v", err)
	}
	time.Sleep(3 * testBlockTime)
	stoppedAt := n3.node.Chain().Head().Height
	c.waitHeight([]*testNode{leader}, stoppedAt+10)
	if h := n3.node.Chain().Head().Height; h > stoppedAt {
		t.Fatalf("removed member kept receiving blocks: %d -> %d", stoppedAt, h)
	}
	// Removing it again is harmless.
	if _, err := leader.client.RemoveMember(context.Background(), "n3", 0); err != nil {
		t.Fatalf("second removal: %v", err)
	}
}

func member(cfg nodeapi.Configuration, id string) *nodeapi.Member {
	for i := range cfg.Servers {
		if cfg.Servers[i].ID == id {
			return &cfg.Servers[i]
		}
	}
	return nil
}

// TestNewMemberRestoredFromSnapshotBackfillsHistory adds a member after the log was compacted: Raft
// installs a snapshot (state and head), and the node fetches the older blocks from its peers.
func TestNewMemberRestoredFromSnapshotBackfillsHistory(t *testing.T) {
	small := func(cfg *sequencer.Config) {
		cfg.SnapshotThreshold, cfg.TrailingLogs, cfg.SnapshotInterval = 16, 8, 100*time.Millisecond
	}
	c := &testCluster{t: t, nodes: map[string]*testNode{}, apis: map[string]string{}}
	c.key = newKey(t)
	c.addNodeWith("n0", true, small)
	c.addNodeWith("n1", false, small)
	c.addNodeWith("n2", false, small)
	c.form()
	leader := c.leader()
	if _, err := leader.client.SubmitTx(context.Background(), []byte("set early yes"), true); err != nil {
		t.Fatal(err)
	}
	c.waitHeight(c.followers(""), 80)
	c.eventually(10*time.Second, "a snapshot on the leader", func() error {
		if st := leader.node.Status(); st.LastSnapshotIndex == 0 {
			return errors.New("no snapshot yet")
		}
		return nil
	})

	n3 := c.addNodeWith("n3", false, small)
	if _, err := leader.client.AddMember(context.Background(), nodeapi.AddMemberRequest{ID: "n3", Address: raftAddr("n3")}); err != nil {
		t.Fatal(err)
	}
	target := leader.node.Chain().Head().Height
	c.waitHeight([]*testNode{n3}, target)
	if st := n3.node.Status(); st.LastSnapshotIndex == 0 {
		t.Fatal("n3 caught up from the log, not from a snapshot: the test did not exercise backfill")
	}
	c.eventually(20*time.Second, "n3 has the whole history", func() error {
		if from, to, missing := n3.node.Chain().Missing(); missing {
			return fmt.Errorf("blocks %d..%d missing", from, to)
		}
		return nil
	})
	if v, ok := n3.node.Chain().Get([]byte("early")); !ok || string(v) != "yes" {
		t.Fatalf("state from the snapshot: early=%q %v", v, ok)
	}
	c.assertOneHashPerHeight(c.followers(""))
	c.eventually(10*time.Second, "n3 ready", func() error { return n3.node.Ready() })
}

// poisonExecutor fails on the transaction "poison": a leader that takes it cannot build blocks.
type poisonExecutor struct{ chain.KVExecutor }

func (p poisonExecutor) Execute(prev []byte, txs [][]byte, get func([]byte) ([]byte, bool)) (chain.ExecResult, error) {
	for _, tx := range txs {
		if string(tx) == "poison" {
			return chain.ExecResult{}, errors.New("executor unavailable")
		}
	}
	return p.KVExecutor.Execute(prev, txs, get)
}

func TestUnhealthyProducerHandsLeadershipOver(t *testing.T) {
	withPoison := func(cfg *sequencer.Config) { cfg.Executor = poisonExecutor{} }
	c := &testCluster{t: t, key: newKey(t), nodes: map[string]*testNode{}, apis: map[string]string{}}
	for i, id := range []string{"n0", "n1", "n2"} {
		c.addNodeWith(id, i == 0, withPoison)
	}
	c.form()
	old := c.leader()
	stuckAt := old.node.Chain().Head().Height
	resp, err := old.node.SubmitTx(context.Background(), []byte("poison"), false)
	if err != nil {
		t.Fatalf("submit: %+v %v", resp, err)
	}
	// The old leader cannot build a block for UnhealthyAfter block times, then hands over.
	c.eventually(10*time.Second, "leadership moves away from the unhealthy producer", func() error {
		if l := c.leader(); l == old {
			return errors.New("still leading")
		}
		return nil
	})
	c.waitHeight(c.followers(""), stuckAt+10)
	c.assertOneHashPerHeight(c.followers(""))
}

// TestWipedFirstMemberDoesNotFoundSecondCluster restarts the first member with an empty disk, still
// asked to bootstrap (as its pod template says) but told the cluster exists: it must wait to be
// added back, never start a second cluster.
func TestWipedFirstMemberDoesNotFoundSecondCluster(t *testing.T) {
	c := newTestCluster(t, "n0", "n1", "n2")
	c.form()
	c.leader()
	if c.nodes["n0"].node.Raft().IsLeader() {
		if _, err := c.nodes["n0"].client.TransferLeadership(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.leader()
	if _, err := leader.client.RemoveMember(context.Background(), "n0", 0); err != nil {
		t.Fatal(err)
	}
	c.nodes["n0"].node.Kill()
	wiped := c.addNodeWith("n0-wiped", true, func(cfg *sequencer.Config) {
		cfg.InitialClusterState = sequencer.ClusterStateExisting
	})
	time.Sleep(10 * testBlockTime)
	st := wiped.node.Status()
	if st.State == nodeapi.StateLeader || len(st.Configuration.Servers) != 0 || st.Height != 0 {
		t.Fatalf("wiped node bootstrapped something: %+v", st)
	}
	if err := wiped.node.Ready(); err == nil {
		t.Fatal("a node outside the configuration reports ready")
	}
	if !st.Rejoining {
		t.Fatal("a node with no data in an existing cluster must refuse to vote until caught up")
	}
	if _, err := leader.client.AddMember(context.Background(), nodeapi.AddMemberRequest{ID: "n0-wiped", Address: raftAddr("n0-wiped")}); err != nil {
		t.Fatal(err)
	}
	c.waitHeight([]*testNode{wiped}, leader.node.Chain().Head().Height)
	c.eventually(5*time.Second, "rejoin ends once caught up", func() error {
		if wiped.node.Status().Rejoining {
			return errors.New("still rejoining")
		}
		return nil
	})
	c.assertOneHashPerHeight([]*testNode{wiped, c.nodes["n1"], c.nodes["n2"]})
}
