//go:build e2e

package e2e

import (
	"fmt"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// (b) kill -9 the leader's process → a new leader, status.leader and the label follow, the chain goes on,
// one hash per height across all pods, every acknowledged transaction present.
var _ = Describe("Failover", Label(LabelFailover, LabelDisruptive), func() {
	It("survives SIGKILL of the leader under load without losing an acknowledged transaction", func(ctx SpecContext) {
		ns := createNamespace(ctx, "failover")
		sc := createHealthyCluster(ctx, newSequencerCluster(ns, "failover", 3))
		pods := podNames(sc, 3)

		waitStableLeader(ctx, sc, pods, 2*time.Second)
		load := startTxLoad(ctx, sc, pods, 3)
		DeferCleanup(func() { load.stop() })
		time.Sleep(2 * time.Second) // let transactions flow through the old leader

		old, oldSt := waitRaftLeader(ctx, sc, pods, "", 10*time.Second)
		By(fmt.Sprintf("SIGKILL of the leader %s at height %d, term %d", old, oldSt.Height, oldSt.Term))
		Expect(lc.KillPodProcess(ctx, ns, old, "", syscall.SIGKILL)).To(Succeed())
		// Taken after the call: it reads the pod from the API server before the kill syscall, which can take a
		// while on a busy machine, and the old leader produces until the signal lands.
		killed := time.Now()

		survivors := without(pods, old)
		leader, st := waitRaftLeader(ctx, sc, survivors, old, 10*time.Second)
		Expect(st.Term).To(BeNumerically(">", oldSt.Term), "the new leader's term")
		fmt.Fprintf(GinkgoWriter, "New leader %s (term %d) %s after the kill\n", leader, st.Term, time.Since(killed).Round(time.Millisecond))

		By("status.leader and the leader label following within a second or so")
		leader, statusLag := waitStatusFollowsRaft(ctx, sc, survivors, old, killed)
		summary.record("failover: kill → status.leader+label", statusLag, "(b) "+old+" → "+leader)

		By("the chain going on")
		waitHeight(ctx, sc, survivors, oldSt.Height+20, 20*time.Second)
		// The new leader's first block ends the largest gap among the blocks stamped around the kill (the old
		// leader's last block may be committed by the new leader, so "first block after the kill" could be its).
		gap, first := largestGapAround(ctx, sc, leader, oldSt.Height, killed)
		summary.record("failover: kill → first new block", first.Time.Sub(killed), fmt.Sprintf("(b) height %d", first.Height))
		summary.record("failover: largest block gap", gap, fmt.Sprintf("(b) before height %d", first.Height))
		Expect(gap).To(BeNumerically("<=", failoverBound), "largest block gap around the failover")

		By("the killed pod restarting and rejoining")
		waitHealthy(ctx, sc, 3, 2*time.Minute)

		acked := load.stop()
		fmt.Fprintf(GinkgoWriter, "%d acknowledged transactions, %d submissions not acknowledged\n", len(acked), load.failed.Load())
		Expect(len(acked)).To(BeNumerically(">=", 20), "the load should have run")

		_, final := waitRaftLeader(ctx, sc, pods, "", 15*time.Second)
		waitHeight(ctx, sc, pods, final.Height, 30*time.Second)
		expectOneHashPerHeight(ctx, sc, pods, 1, final.Height)
		expectAckedTxsEverywhere(ctx, sc, pods, acked)
	})
})

// without returns names without the one given.
func without(names []string, drop ...string) []string {
	var out []string
outer:
	for _, n := range names {
		for _, d := range drop {
			if n == d {
				continue outer
			}
		}
		out = append(out, n)
	}
	return out
}
