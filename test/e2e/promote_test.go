//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// (f) `kubectl sequencer promote` → leadership on the named pod.
var _ = Describe("kubectl sequencer promote", Label(LabelPlugin, LabelSwitchover), func() {
	It("moves leadership to the named pod", func(ctx SpecContext) {
		ns := createNamespace(ctx, "promote")
		sc := createHealthyCluster(ctx, newSequencerCluster(ns, "promote", 3))
		pods := podNames(sc, 3)
		// The operator refuses a target that is catching up; under CPU contention a young cluster may still
		// see elections, so ask once it is Healthy with a stable leader.
		waitStableLeader(ctx, sc, pods, 2*time.Second)
		old, oldSt := waitRaftLeader(ctx, sc, pods, "", 10*time.Second)
		target := without(pods, old)[1]

		By(fmt.Sprintf("kubectl sequencer promote %s %s (leader %s)", sc.Name, target, old))
		began := time.Now()
		cmd := exec.CommandContext(ctx, pluginBin, "promote", sc.Name, target, "-n", ns, "--kubeconfig", lc.KubeconfigPath(), "--timeout", "60s")
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "kubectl sequencer promote:\n%s", out)
		fmt.Fprintf(GinkgoWriter, "kubectl sequencer promote (%s):\n%s", time.Since(began).Round(time.Millisecond), out)
		summary.record("promote: plugin returned", time.Since(began), "(f) "+old+" → "+target)

		leader, st := waitRaftLeader(ctx, sc, pods, old, 10*time.Second)
		Expect(leader).To(Equal(target), "the Raft leader after the promote")
		got, err := getCluster(ctx, sc)
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Status.Leader).To(Equal(target), "status.leader after the promote")
		Expect(got.Annotations).NotTo(HaveKey("seqops.io/transfer-leader-to"), "the request annotation is removed when done")

		waitHeight(ctx, sc, pods, st.Height+10, 20*time.Second)
		gap, at := blockGap(ctx, sc, target, oldSt.Height, st.Height+10)
		summary.record("promote: largest block gap", gap, fmt.Sprintf("(f) before height %d", at))
		Expect(gap).To(BeNumerically("<=", switchoverBound), "largest block gap around the promote")
	})
})
