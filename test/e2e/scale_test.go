//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// (d) scale 3 → 5: five voters; 5 → 3: three voters, the removed members gone from Raft, their PVCs handled
// by the retention policy; with the leader among the removed ones.
var _ = Describe("Scaling", Label(LabelScale), func() {
	It("grows 3 → 5 voters and shrinks 5 → 3 while the leader is among the removed, deleting their volumes", func(ctx SpecContext) {
		ns := createNamespace(ctx, "scale")
		sc := newSequencerCluster(ns, "scale", 3)
		sc.Spec.Storage.RetentionPolicy = seqv1.PVCDelete
		sc = createHealthyCluster(ctx, sc)

		By("scaling to 5")
		began := time.Now()
		setReplicas(ctx, sc, 5)
		waitHealthy(ctx, sc, 5, 3*time.Minute)
		five := podNames(sc, 5)
		expectVoters(ctx, sc, five, five)
		summary.record("scale 3 → 5: Healthy with 5 voters", time.Since(began), "(d)")

		By("moving leadership to scale-4, one of the members the scale-down removes")
		requestSwitchover(ctx, sc, "scale-4")
		leader, _ := waitRaftLeader(ctx, sc, five, "", 30*time.Second)
		Eventually(func() string { l, _, _ := raftLeader(ctx, sc, five); return l }).WithContext(ctx).WithTimeout(30*time.Second).
			Should(Equal("scale-4"), "scale-4 should lead after the switchover (was %s)", leader)
		_, before := waitRaftLeader(ctx, sc, five, "", 5*time.Second)

		By("scaling to 3")
		began = time.Now()
		setReplicas(ctx, sc, 3)
		waitHealthy(ctx, sc, 3, 3*time.Minute)
		three := podNames(sc, 3)
		expectVoters(ctx, sc, three, three)
		summary.record("scale 5 → 3: Healthy with 3 voters", time.Since(began), "(d)")
		for _, gone := range []string{"scale-3", "scale-4"} {
			Eventually(func() bool { return isGone(ctx, &corev1.Pod{ObjectMeta: objMeta(ns, gone)}) }).WithContext(ctx).
				WithTimeout(60*time.Second).Should(BeTrue(), "pod %s should be gone", gone)
			Eventually(func() bool {
				return isGone(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: objMeta(ns, pvcName(gone))})
			}).WithContext(ctx).WithTimeout(60*time.Second).Should(BeTrue(), "PVC %s should be deleted (retentionPolicy Delete)", pvcName(gone))
		}
		for _, kept := range three {
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pvcName(kept)}, &corev1.PersistentVolumeClaim{})).To(Succeed(), "PVC of %s", kept)
		}

		_, final := waitRaftLeader(ctx, sc, three, "", 15*time.Second)
		waitHeight(ctx, sc, three, final.Height, 30*time.Second)
		gap, at := blockGap(ctx, sc, three[0], before.Height, final.Height)
		summary.record("scale 5 → 3 (leader removed): largest gap", gap, fmt.Sprintf("(d) before height %d", at))
		Expect(gap).To(BeNumerically("<=", failoverBound), "largest block gap while the leader was scaled away")
		expectOneHashPerHeight(ctx, sc, three, 1, final.Height)
	})
})

// setReplicas patches spec.replicas.
func setReplicas(ctx context.Context, sc *seqv1.SequencerCluster, n int32) {
	patch := []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, n))
	Expect(k8s.Patch(ctx, &seqv1.SequencerCluster{ObjectMeta: objMeta(sc.Namespace, sc.Name)}, client.RawPatch("application/merge-patch+json", patch))).To(Succeed())
}

// requestSwitchover sets the seqops.io/transfer-leader-to annotation, as the plugin does.
func requestSwitchover(ctx context.Context, sc *seqv1.SequencerCluster, pod string) {
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, seqv1.AnnotationTransferLeaderTo, pod))
	Expect(k8s.Patch(ctx, &seqv1.SequencerCluster{ObjectMeta: objMeta(sc.Namespace, sc.Name)}, client.RawPatch("application/merge-patch+json", patch))).To(Succeed())
}

// expectVoters waits until every pod of pods reports exactly the voters want and no other member.
func expectVoters(ctx context.Context, sc *seqv1.SequencerCluster, pods, want []string) {
	Eventually(func(g Gomega) {
		sts := raftStatuses(ctx, sc, pods)
		for _, p := range pods {
			g.Expect(sts).To(HaveKey(p), "pod %s answers /raft", p)
			g.Expect(voters(sts[p])).To(ConsistOf(want), "voters as %s sees them", p)
			g.Expect(configIDs(sts[p])).To(ConsistOf(want), "members as %s sees them", p)
		}
	}).WithContext(ctx).WithTimeout(30*time.Second).WithPolling(200*time.Millisecond).Should(Succeed(),
		"the Raft configuration should be exactly the voters %v", want)
}
