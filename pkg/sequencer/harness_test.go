package sequencer_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	"go.uber.org/zap/zaptest"

	"github.com/seqops/sequencer-operator/pkg/failover"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
	sraft "github.com/seqops/sequencer-operator/pkg/raft"
	"github.com/seqops/sequencer-operator/pkg/sequencer"
)

const (
	testToken     = "test-token"
	testBlockTime = 50 * time.Millisecond
)

// testTimings are the default timings with the leader lease at the heartbeat timeout: these tests check
// behaviour on a machine shared with the rest of the suite, where a 50 ms scheduling stall would depose a
// leader mid-test (the benchmarks measure the defaults).
var testTimings = sraft.Timings{Heartbeat: 100 * time.Millisecond, Election: 400 * time.Millisecond, LeaderLease: 100 * time.Millisecond, Commit: 10 * time.Millisecond}

// swapHandler lets an httptest server exist before the node it serves, so every node's API URL is
// known when the nodes are built.
type swapHandler struct {
	mu sync.RWMutex
	h  http.Handler
}

func (s *swapHandler) set(h http.Handler) { s.mu.Lock(); s.h = h; s.mu.Unlock() }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	h := s.h
	s.mu.RUnlock()
	if h == nil {
		http.Error(w, "node not started", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

// testCluster is an in-process cluster: real Raft servers on in-memory transports, real chain stores
// in temp dirs, and each node's real API behind an httptest server.
type testCluster struct {
	t      *testing.T
	key    ed25519.PrivateKey
	nodes  map[string]*testNode
	order  []string
	apisMu sync.Mutex
	apis   map[string]string
}

func (c *testCluster) api(raftAddr string) string {
	c.apisMu.Lock()
	defer c.apisMu.Unlock()
	return c.apis[raftAddr]
}

type testNode struct {
	id     string
	node   *sequencer.Node
	srv    *httptest.Server
	swap   *swapHandler
	client *nodeapi.Client
	trans  *hraft.InmemTransport
}

func newTestCluster(t *testing.T, ids ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, key: newKey(t), nodes: map[string]*testNode{}, apis: map[string]string{}}
	for _, id := range ids {
		c.addNode(id, id == ids[0])
	}
	return c
}

// addNode starts a node; the first one bootstraps, the others wait to be added.
func (c *testCluster) addNode(id string, bootstrap bool) *testNode {
	return c.addNodeWith(id, bootstrap, func(*sequencer.Config) {})
}

// addNodeWith starts a node with a changed configuration.
func (c *testCluster) addNodeWith(id string, bootstrap bool, change func(*sequencer.Config)) *testNode {
	t := c.t
	t.Helper()
	swap := &swapHandler{}
	srv := httptest.NewServer(swap)
	t.Cleanup(srv.Close)
	c.apisMu.Lock()
	c.apis[raftAddr(id)] = srv.URL
	c.apisMu.Unlock()
	cfg := sequencer.Config{
		ID:            id,
		RaftAdvertise: raftAddr(id),
		ChainID:       "test-chain",
		DataDir:       t.TempDir(),
		HTTPAddr:      "127.0.0.1:0",
		Bootstrap:     bootstrap,
		APIToken:      testToken,
		SigningKey:    c.key,
		Producer:      failover.Config{BlockTime: testBlockTime},
		Timings:       testTimings,
		Autopilot:     sraft.AutopilotConfig{StabilizationTime: 300 * time.Millisecond},
		InMemoryRaft:  true,
	}
	change(&cfg)
	n, err := sequencer.New(cfg, zaptest.NewLogger(t).Named(id), sequencer.WithPeerAPI(c.api))
	if err != nil {
		t.Fatalf("cannot create node %s: %v", id, err)
	}
	swap.set(n.Handler())
	tn := &testNode{id: id, node: n, srv: srv, swap: swap, client: nodeapi.NewClient(srv.URL, nodeapi.WithToken(testToken)),
		trans: n.Raft().Transport().(*hraft.InmemTransport)}
	for _, other := range c.nodes {
		tn.trans.Connect(hraft.ServerAddress(raftAddr(other.id)), other.trans)
		other.trans.Connect(hraft.ServerAddress(raftAddr(id)), tn.trans)
	}
	c.nodes[id] = tn
	c.order = append(c.order, id)
	if err := n.Start(context.Background(), false); err != nil {
		t.Fatalf("cannot start node %s: %v", id, err)
	}
	t.Cleanup(func() { n.Kill() })
	return tn
}

// form bootstraps the first node, adds the others as non-voters and waits until autopilot made them voters.
func (c *testCluster) form() {
	c.t.Helper()
	first := c.nodes[c.order[0]]
	c.eventually(5*time.Second, "first node leads", func() error {
		if !first.node.Raft().IsLeader() {
			return fmt.Errorf("not leader yet")
		}
		return nil
	})
	for _, id := range c.order[1:] {
		if _, err := first.client.AddMember(context.Background(), nodeapi.AddMemberRequest{ID: id, Address: raftAddr(id)}); err != nil {
			c.t.Fatalf("cannot add %s: %v", id, err)
		}
	}
	c.eventually(15*time.Second, "all members are voters", func() error {
		cfg, err := first.client.Members(context.Background())
		if err != nil {
			return err
		}
		voters := 0
		for _, s := range cfg.Servers {
			if s.Suffrage == nodeapi.SuffrageVoter {
				voters++
			}
		}
		if voters != len(c.order) {
			return fmt.Errorf("%d of %d voters: %+v", voters, len(c.order), cfg.Servers)
		}
		return nil
	})
}

func (c *testCluster) leader() *testNode {
	c.t.Helper()
	var leader *testNode
	c.eventually(5*time.Second, "a producing leader", func() error {
		leader = nil
		for _, id := range c.order {
			n := c.nodes[id]
			if n.node.Status().Producing {
				if leader != nil {
					return fmt.Errorf("two producers: %s and %s", leader.id, id)
				}
				leader = n
			}
		}
		if leader == nil {
			return fmt.Errorf("no producer")
		}
		return nil
	})
	return leader
}

func (c *testCluster) followers(except string) []*testNode {
	var out []*testNode
	for _, id := range c.order {
		if id != except {
			out = append(out, c.nodes[id])
		}
	}
	return out
}

func (c *testCluster) waitHeight(nodes []*testNode, height uint64) {
	c.t.Helper()
	c.eventually(10*time.Second, fmt.Sprintf("height %d on every node", height), func() error {
		for _, n := range nodes {
			if h := n.node.Chain().Head().Height; h < height {
				return fmt.Errorf("%s at %d", n.id, h)
			}
		}
		return nil
	})
}

// partition cuts n off from every other node, both ways.
func (c *testCluster) partition(n *testNode) {
	n.trans.DisconnectAll()
	for _, other := range c.nodes {
		if other != n {
			other.trans.Disconnect(hraft.ServerAddress(raftAddr(n.id)))
		}
	}
}

func (c *testCluster) heal(n *testNode) {
	for _, other := range c.nodes {
		if other != n {
			n.trans.Connect(hraft.ServerAddress(raftAddr(other.id)), other.trans)
			other.trans.Connect(hraft.ServerAddress(raftAddr(n.id)), n.trans)
		}
	}
}

// assertOneHashPerHeight checks that every block any node serves equals every other node's block at
// that height, and that each node's chain links by parent hash.
func (c *testCluster) assertOneHashPerHeight(nodes []*testNode) {
	c.t.Helper()
	seen := map[uint64][]byte{}
	for _, n := range nodes {
		head := n.node.Chain().Head().Height
		var parent []byte
		for h := uint64(1); h <= head; h++ {
			b, err := n.node.Chain().Block(h)
			if err != nil {
				c.t.Fatalf("%s cannot read block %d: %v", n.id, h, err)
			}
			hash := sequencer.BlockJSON(b).Hash
			if prev, ok := seen[h]; ok && !bytes.Equal(prev, []byte(hash)) {
				c.t.Fatalf("fork at height %d: %s has %s, another node %s", h, n.id, hash, prev)
			}
			seen[h] = []byte(hash)
			if h > 1 && !bytes.Equal(b.GetHeader().GetParentHash(), parent) {
				c.t.Fatalf("%s: block %d does not link to block %d", n.id, h, h-1)
			}
			parent = chainHash(b)
		}
	}
}

func (c *testCluster) eventually(timeout time.Duration, what string, fn func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
}

// raftAddr is a node's in-memory Raft address; it has a port so it passes the API's address check.
func raftAddr(id string) string { return id + ":7000" }

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
