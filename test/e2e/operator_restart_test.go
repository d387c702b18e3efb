//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// Issue 7, item 2: the operator pod is restarted in the middle of a scale-up and of a rollout; the cluster
// still converges to the spec with no lost member and no second cluster.
var _ = Describe("Operator restarts", Label(LabelOperatorRestart, LabelDisruptive), func() {
	It("converges when the operator pod is deleted mid-scale and mid-rollout", func(ctx SpecContext) {
		ns := createNamespace(ctx, "oprestart")
		sc := createHealthyCluster(ctx, newSequencerCluster(ns, "opr", 3))

		By("scaling 3 → 5 and deleting the operator pod once the first new member joined")
		began := time.Now()
		setReplicas(ctx, sc, 5)
		three := podNames(sc, 3)
		Eventually(func() int {
			_, st, err := raftLeader(ctx, sc, three)
			if err != nil {
				return 0
			}
			return len(configIDs(st))
		}).WithContext(ctx).WithTimeout(2*time.Minute).WithPolling(50*time.Millisecond).Should(BeNumerically(">", 3),
			"a fourth member should join")
		deleteOperatorPods(ctx)
		waitHealthy(ctx, sc, 5, 3*time.Minute)
		five := podNames(sc, 5)
		expectVoters(ctx, sc, five, five)
		summary.record("operator restarted mid-scale: 3 → 5 Healthy", time.Since(began), "(7.2)")

		By("rolling out a new image and deleting the operator pod after the first pod was replaced")
		began = time.Now()
		uids := podUIDs(ctx, ns, five)
		patch := []byte(`{"spec":{"image":"ghcr.io/seqops/sequencer-node:v0.1.2"}}`)
		Expect(k8s.Patch(ctx, &seqv1.SequencerCluster{ObjectMeta: objMeta(ns, sc.Name)}, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
		Eventually(func() bool {
			for _, p := range five {
				if pod, err := getPod(ctx, ns, p); err != nil || pod.UID != uids[p] || pod.DeletionTimestamp != nil {
					return true
				}
			}
			return false
		}).WithContext(ctx).WithTimeout(2*time.Minute).WithPolling(50*time.Millisecond).Should(BeTrue(), "the rollout should replace a pod")
		deleteOperatorPods(ctx)
		Eventually(func(g Gomega) {
			for _, p := range five {
				pod, err := getPod(ctx, ns, p)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pod.Spec.Containers[0].Image).To(HaveSuffix(":v0.1.2"), "image of %s", p)
			}
		}).WithContext(ctx).WithTimeout(5*time.Minute).WithPolling(time.Second).Should(Succeed(), "every pod should run the new image")
		waitHealthy(ctx, sc, 5, 3*time.Minute)
		expectVoters(ctx, sc, five, five)
		summary.record("operator restarted mid-rollout: 5 pods replaced, Healthy", time.Since(began), "(7.2)")

		_, final := waitRaftLeader(ctx, sc, five, "", 15*time.Second)
		waitHeight(ctx, sc, five, final.Height, 30*time.Second)
		expectOneHashPerHeight(ctx, sc, five, 1, final.Height)
	})
})

// deleteOperatorPods deletes the operator's pods behind its back; its Deployment brings a fresh one up.
func deleteOperatorPods(ctx context.Context) {
	var pods corev1.PodList
	Expect(k8s.List(ctx, &pods, client.InNamespace(operatorNamespace))).To(Succeed())
	Expect(pods.Items).NotTo(BeEmpty(), "operator pods in %s", operatorNamespace)
	for i := range pods.Items {
		fmt.Fprintf(GinkgoWriter, "Deleting operator pod %s\n", pods.Items[i].Name)
		Expect(client.IgnoreNotFound(k8s.Delete(ctx, &pods.Items[i], client.GracePeriodSeconds(0)))).To(Succeed())
	}
}
