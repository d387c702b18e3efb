//go:build e2e

package e2e

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// (g) cut the leader off the network → a new leader on the majority side; the old one stops producing;
// healed, it rejoins as follower; no fork.
var _ = Describe("Network partition", Label(LabelPartition, LabelDisruptive), func() {
	It("elects a new leader on the majority side, stops the cut-off leader, and takes it back as a follower", func(ctx SpecContext) {
		ns := createNamespace(ctx, "partition")
		sc := createHealthyCluster(ctx, newSequencerCluster(ns, "partition", 3))
		pods := podNames(sc, 3)
		waitStableLeader(ctx, sc, pods, 2*time.Second)
		old, oldSt := waitRaftLeader(ctx, sc, pods, "", 10*time.Second)
		majority := without(pods, old)
		self := selfClient(sc, old)

		By(fmt.Sprintf("cutting the leader %s off the network at height %d", old, oldSt.Height))
		cut := time.Now()
		Expect(lc.CutPodNetwork(ctx, ns, old)).To(Succeed())
		healed := false
		DeferCleanup(func(ctx SpecContext) {
			if !healed {
				_ = lc.HealPodNetwork(ctx, ns, old)
			}
		})

		leader, st := waitRaftLeader(ctx, sc, majority, old, 15*time.Second)
		summary.record("partition: cut → new leader on the majority", time.Since(cut), "(g) "+old+" → "+leader)

		By("the cut-off leader stepping down and no longer producing")
		var stale *nodeapi.Status
		Eventually(func(g Gomega) {
			s, err := self.Status(ctx)
			g.Expect(err).NotTo(HaveOccurred(), "%s's /raft from inside its pod", old)
			g.Expect(s.State).NotTo(Equal("Leader"), "state of the cut-off %s", old)
			g.Expect(s.Producing).To(BeFalse(), "producing on the cut-off %s", old)
			stale = s
		}).WithContext(ctx).WithTimeout(5*time.Second).WithPolling(20*time.Millisecond).Should(Succeed(), "the cut-off leader should step down")
		summary.record("partition: cut → old leader stepped down", time.Since(cut), "(g) "+old)
		Consistently(func(g Gomega) {
			s, err := self.Status(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s.Height).To(Equal(stale.Height), "height of the cut-off %s", old)
			g.Expect(s.Producing).To(BeFalse())
		}).WithContext(ctx).WithTimeout(2*time.Second).WithPolling(200*time.Millisecond).Should(Succeed(),
			"the cut-off node should produce nothing")
		waitHeight(ctx, sc, majority, st.Height+20, 20*time.Second)

		By("the status following the majority's leader")
		_, statusLag := waitStatusFollowsRaft(ctx, sc, majority, old, cut)
		summary.record("partition: cut → status.leader", statusLag, "(g)")

		By("healing the network")
		Expect(lc.HealPodNetwork(ctx, ns, old)).To(Succeed())
		healed = true
		Eventually(func(g Gomega) {
			s, err := nodeClient(sc, old).Status(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s.State).To(Equal("Follower"), "state of %s after the heal", old)
			g.Expect(s.LeaderID).NotTo(BeEmpty())
			g.Expect(s.LeaderID).NotTo(Equal(old))
		}).WithContext(ctx).WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).Should(Succeed(), "%s should rejoin as a follower", old)
		waitHealthy(ctx, sc, 3, 2*time.Minute)
		_, final := waitRaftLeader(ctx, sc, pods, "", 15*time.Second)
		waitHeight(ctx, sc, pods, final.Height, 30*time.Second)
		expectOneHashPerHeight(ctx, sc, pods, 1, final.Height)
	})
})

// selfClient reaches a pod's node API from inside its own network namespace, which works while the pod is cut off.
func selfClient(sc *seqv1.SequencerCluster, pod string) *nodeapi.Client {
	return nodeapi.NewClient("http://127.0.0.1:8080", nodeapi.WithHTTPClient(lc.HTTPClientFromPod(sc.Namespace, pod, 2*time.Second)))
}
