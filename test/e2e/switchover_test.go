//go:build e2e

package e2e

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// (c) kubectl delete pod <leader> → graceful switchover, largest block gap ≤ 2 × block time.
var _ = Describe("Switchover on pod deletion", Label(LabelSwitchover, LabelDisruptive), func() {
	It("hands leadership over when the leader's pod is deleted, with a block gap of at most two block times", func(ctx SpecContext) {
		ns := createNamespace(ctx, "delete")
		sc := createHealthyCluster(ctx, newSequencerCluster(ns, "delete", 3))
		pods := podNames(sc, 3)

		waitStableLeader(ctx, sc, pods, 2*time.Second)
		old, oldSt := waitRaftLeader(ctx, sc, pods, "", 10*time.Second)
		By(fmt.Sprintf("kubectl delete pod %s (the leader, height %d)", old, oldSt.Height))
		began := time.Now()
		_, stderr, err := kubectl(ctx, "delete", "pod", "-n", ns, old, "--wait=false")
		Expect(err).NotTo(HaveOccurred(), stderr)

		leader, st := waitRaftLeader(ctx, sc, without(pods, old), old, 15*time.Second)
		fmt.Fprintf(GinkgoWriter, "New leader %s (term %d) %s after the delete\n", leader, st.Term, time.Since(began).Round(time.Millisecond))
		leader, statusLag := waitStatusFollowsRaft(ctx, sc, without(pods, old), old, began)
		summary.record("switchover (delete pod): → status.leader", statusLag, "(c) "+old+" → "+leader)

		waitHeight(ctx, sc, without(pods, old), st.Height+20, 20*time.Second)
		gap, at := blockGap(ctx, sc, leader, oldSt.Height-5, st.Height+20)
		summary.record("switchover (delete pod): largest gap", gap, fmt.Sprintf("(c) before height %d", at))
		Expect(gap).To(BeNumerically("<=", switchoverBound), "largest block gap around the switchover (block %d)", at)

		By("the deleted pod coming back as a follower")
		waitHealthy(ctx, sc, 3, 2*time.Minute)
		_, final := waitRaftLeader(ctx, sc, pods, "", 15*time.Second)
		waitHeight(ctx, sc, pods, final.Height, 30*time.Second)
		expectOneHashPerHeight(ctx, sc, pods, 1, final.Height)
	})
})
