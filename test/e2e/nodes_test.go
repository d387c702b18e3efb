//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// nodeURL is a pod's node API by its stable peer DNS name, resolved through the local cluster's hosts table.
func nodeURL(sc *seqv1.SequencerCluster, pod string) string {
	return fmt.Sprintf("http://%s.%s-peers.%s.svc.cluster.local:8080", pod, sc.Name, sc.Namespace)
}

// nodeClient talks to one pod from the host. Short timeouts: a dead or cut pod must not stall a poll.
func nodeClient(sc *seqv1.SequencerCluster, pod string) *nodeapi.Client {
	return nodeapi.NewClient(nodeURL(sc, pod), nodeapi.WithHTTPClient(lc.HTTPClient(2*time.Second)))
}

// blockClient keeps connections open: checks read thousands of blocks.
func blockClient(sc *seqv1.SequencerCluster, pod string) *nodeapi.Client {
	return nodeapi.NewClient(nodeURL(sc, pod), nodeapi.WithHTTPClient(&http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DialContext: lc.DialContext, MaxIdleConnsPerHost: 4},
	}))
}

// raftStatuses reads /raft of each pod; pods that do not answer are left out.
func raftStatuses(ctx context.Context, sc *seqv1.SequencerCluster, pods []string) map[string]*nodeapi.Status {
	out := map[string]*nodeapi.Status{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := nodeClient(sc, p).Status(ctx)
			if err == nil {
				mu.Lock()
				out[p] = st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// raftLeader is the pod whose /raft says Leader (the one with the highest term if a deposed leader has not
// noticed yet), and its status.
func raftLeader(ctx context.Context, sc *seqv1.SequencerCluster, pods []string) (string, *nodeapi.Status, error) {
	var leader string
	var best *nodeapi.Status
	for p, st := range raftStatuses(ctx, sc, pods) {
		if st.State == "Leader" && (best == nil || st.Term > best.Term) {
			leader, best = p, st
		}
	}
	if best == nil {
		return "", nil, errors.New("no pod reports itself Leader")
	}
	return leader, best, nil
}

// waitRaftLeader waits for a Raft leader other than notPod (empty: any) and returns it.
func waitRaftLeader(ctx context.Context, sc *seqv1.SequencerCluster, pods []string, notPod string, timeout time.Duration) (string, *nodeapi.Status) {
	var leader string
	var st *nodeapi.Status
	Eventually(func(g Gomega) {
		var err error
		leader, st, err = raftLeader(ctx, sc, pods)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(leader).NotTo(Equal(notPod), "the leader")
		g.Expect(st.Producing).To(BeTrue(), "the leader %s is producing", leader)
	}).WithContext(ctx).WithTimeout(timeout).WithPolling(20*time.Millisecond).Should(Succeed(),
		"a producing Raft leader other than %q among %v", notPod, pods)
	return leader, st
}

// waitHeight waits until every given pod's chain reached height h.
func waitHeight(ctx context.Context, sc *seqv1.SequencerCluster, pods []string, h uint64, timeout time.Duration) {
	Eventually(func(g Gomega) {
		sts := raftStatuses(ctx, sc, pods)
		for _, p := range pods {
			g.Expect(sts).To(HaveKey(p), "pod %s answers /raft", p)
			g.Expect(sts[p].Height).To(BeNumerically(">=", h), "height of %s", p)
		}
	}).WithContext(ctx).WithTimeout(timeout).WithPolling(200*time.Millisecond).Should(Succeed(),
		"pods %v should reach height %d", pods, h)
}

// voters is the Raft configuration's voters as pod sees it.
func voters(st *nodeapi.Status) []string {
	var ids []string
	for _, s := range st.Configuration.Servers {
		if s.Suffrage == "Voter" {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// configIDs is every server ID in the Raft configuration.
func configIDs(st *nodeapi.Status) []string {
	var ids []string
	for _, s := range st.Configuration.Servers {
		ids = append(ids, s.ID)
	}
	return ids
}

// expectOneHashPerHeight reads blocks from..to from every pod and fails on any height where two pods hold
// different blocks, or a block that does not link to its parent.
func expectOneHashPerHeight(ctx context.Context, sc *seqv1.SequencerCluster, pods []string, from, to uint64) {
	if from < 1 {
		from = 1
	}
	chains := make([][]*nodeapi.Block, len(pods))
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := blockClient(sc, p)
			for h := from; h <= to; h++ {
				b, err := c.Block(ctx, h)
				if err != nil {
					errs[i] = fmt.Errorf("pod %s: block %d: %w", p, h, err)
					return
				}
				chains[i] = append(chains[i], b)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		Expect(err).NotTo(HaveOccurred())
	}
	for k := range chains[0] {
		h := from + uint64(k)
		for i := range pods {
			Expect(chains[i][k].Hash).To(Equal(chains[0][k].Hash), "fork at height %d: %s and %s hold different blocks", h, pods[i], pods[0])
		}
		if k > 0 {
			Expect(chains[0][k].ParentHash).To(Equal(chains[0][k-1].Hash), "block %d does not link to block %d", h, h-1)
		}
	}
	fmt.Fprintf(GinkgoWriter, "One hash per height for heights %d..%d on %v\n", from, to, pods)
}

// blockGap is the largest time between consecutive blocks in from..to and the height after it.
func blockGap(ctx context.Context, sc *seqv1.SequencerCluster, pod string, from, to uint64) (time.Duration, uint64) {
	if from < 1 {
		from = 1
	}
	c := blockClient(sc, pod)
	var prev time.Time
	var gap time.Duration
	var at uint64
	for h := from; h <= to; h++ {
		b, err := c.Block(ctx, h)
		Expect(err).NotTo(HaveOccurred(), "block %d from %s", h, pod)
		if !prev.IsZero() && b.Time.Sub(prev) > gap {
			gap, at = b.Time.Sub(prev), h
		}
		prev = b.Time
	}
	return gap, at
}

// largestGapAround is the largest gap between consecutive blocks stamped from one second before t to ten
// seconds after it, searching from height near-20, and the block that ends it.
func largestGapAround(ctx context.Context, sc *seqv1.SequencerCluster, pod string, near uint64, t time.Time) (time.Duration, *nodeapi.Block) {
	c := blockClient(sc, pod)
	var prev, end *nodeapi.Block
	var gap time.Duration
	for h := max(near, 21) - 20; ; h++ {
		b, err := c.Block(ctx, h)
		if nodeapi.IsNotFound(err) {
			break
		}
		Expect(err).NotTo(HaveOccurred(), "block %d from %s", h, pod)
		if b.Time.After(t.Add(10 * time.Second)) {
			break
		}
		if prev != nil && b.Time.After(t.Add(-time.Second)) && b.Time.Sub(prev.Time) > gap {
			gap, end = b.Time.Sub(prev.Time), b
		}
		prev = b
	}
	Expect(end).NotTo(BeNil(), "no blocks around %s on %s", t.Format(time.RFC3339Nano), pod)
	return gap, end
}

// blockAt reads one block from a pod.
func blockAt(ctx context.Context, sc *seqv1.SequencerCluster, pod string, h uint64) *nodeapi.Block {
	b, err := blockClient(sc, pod).Block(ctx, h)
	Expect(err).NotTo(HaveOccurred(), "block %d from %s", h, pod)
	return b
}

// txLoad submits unique transactions through the nodes and records the acknowledged (committed) ones.
type txLoad struct {
	mu     sync.Mutex
	acked  map[string]uint64
	failed atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startTxLoad runs workers that submit transactions round-robin to the pods and wait for their commit.
func startTxLoad(ctx context.Context, sc *seqv1.SequencerCluster, pods []string, workers int) *txLoad {
	ctx, cancel := context.WithCancel(ctx)
	l := &txLoad{acked: map[string]uint64{}, cancel: cancel}
	var seq atomic.Int64
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer GinkgoRecover()
			defer l.wg.Done()
			clients := make([]*nodeapi.Client, len(pods))
			for i, p := range pods {
				clients[i] = nodeapi.NewClient(nodeURL(sc, p), nodeapi.WithHTTPClient(lc.HTTPClient(12*time.Second)))
			}
			for i := w; ctx.Err() == nil; i++ {
				n := seq.Add(1)
				resp, err := clients[i%len(clients)].SubmitTx(ctx, []byte(fmt.Sprintf("set %s-k%d v%d", sc.Name, n, n)), true)
				if err != nil || resp.Status != nodeapi.TxCommitted {
					l.failed.Add(1)
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				l.mu.Lock()
				l.acked[resp.Hash] = resp.Height
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// stop ends the load and returns the acknowledged transactions (hash → height).
func (l *txLoad) stop() map[string]uint64 {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

// expectAckedTxsEverywhere checks that every acknowledged transaction is on every pod at the height it was
// acknowledged with.
func expectAckedTxsEverywhere(ctx context.Context, sc *seqv1.SequencerCluster, pods []string, acked map[string]uint64) {
	for _, p := range pods {
		c := blockClient(sc, p)
		for hash, height := range acked {
			got, err := c.Tx(ctx, hash)
			Expect(err).NotTo(HaveOccurred(), "acknowledged tx %s (height %d) on %s", hash, height, p)
			Expect(got.Height).To(Equal(height), "height of acknowledged tx %s on %s", hash, p)
		}
	}
	fmt.Fprintf(GinkgoWriter, "All %d acknowledged transactions are on %v\n", len(acked), pods)
}
