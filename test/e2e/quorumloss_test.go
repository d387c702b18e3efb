//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// Issue 7 item 7: two of three voters lose their volumes for good → NoQuorum with a condition and an event,
// no membership change while it lasts; the runbook's recovery by annotation (a wrong survivor refused, then the
// right one) brings the cluster back to Healthy 3/3 on the survivor's chain with nothing acknowledged lost.
var _ = Describe("Quorum loss", Label(LabelQuorumLoss, LabelDisruptive), func() {
	It("waits in NoQuorum without changing membership, and recovers from the survivor named by the annotation", func(ctx SpecContext) {
		ns := createNamespace(ctx, "quorum")
		sc := createHealthyCluster(ctx, newSequencerCluster(ns, "quorum", 3))
		pods := podNames(sc, 3)

		load := startTxLoad(ctx, sc, pods, 2)
		DeferCleanup(func() { load.stop() })
		time.Sleep(2 * time.Second)
		acked := load.stop()
		Expect(len(acked)).To(BeNumerically(">=", 10), "the load should have run")
		leader, st := waitRaftLeader(ctx, sc, pods, "", 10*time.Second)
		// Every pod holds what was acknowledged, so whichever survives has it all.
		waitHeight(ctx, sc, pods, st.Height, 30*time.Second)
		survivor := without(pods, leader)[0]
		lost := without(pods, survivor)

		By(fmt.Sprintf("deleting the volumes and pods of %v (the survivor %s, height %d)", lost, survivor, st.Height))
		oldUIDs := map[string]string{}
		for _, p := range lost {
			pvc := &corev1.PersistentVolumeClaim{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pvcName(p)}, pvc)).To(Succeed())
			oldUIDs[p] = string(pvc.UID)
			_, stderr, err := kubectl(ctx, "delete", "pvc", "-n", ns, pvcName(p), "--wait=false")
			Expect(err).NotTo(HaveOccurred(), stderr)
		}
		args := append([]string{"delete", "pod", "-n", ns, "--wait=false"}, lost...)
		_, stderr, err := kubectl(ctx, args...)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Eventually(func(g Gomega) {
			for _, p := range lost {
				pvc := &corev1.PersistentVolumeClaim{}
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pvcName(p)}, pvc)).To(Succeed())
				g.Expect(string(pvc.UID)).NotTo(Equal(oldUIDs[p]), "a new PVC for %s", p)
			}
		}).WithContext(ctx).WithTimeout(2*time.Minute).WithPolling(500*time.Millisecond).Should(Succeed(), "the lost pods should get new, empty volumes")

		By("phase NoQuorum, QuorumHealthy=False, a QuorumLost event")
		Eventually(func(g Gomega) {
			got, err := getCluster(ctx, sc)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Phase).To(Equal(seqv1.PhaseNoQuorum), "phase (conditions: %s)", conditionsLine(got))
			q := apimeta.FindStatusCondition(got.Status.Conditions, seqv1.ConditionQuorumHealthy)
			g.Expect(q).NotTo(BeNil())
			g.Expect(q.Status).To(BeEquivalentTo("False"))
			g.Expect(q.Reason).To(Equal(seqv1.ReasonQuorumLost))
			g.Expect(got.Status.Leader).To(BeEmpty(), "status.leader")
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
		Eventually(func() []string { return eventReasons(ctx, sc) }).WithContext(ctx).WithTimeout(30*time.Second).
			Should(ContainElement("QuorumLost"), "events of %s", sc.Name)

		By("no leader and no membership change while the quorum is lost")
		Consistently(func(g Gomega) {
			sts := raftStatuses(ctx, sc, pods)
			for p, s := range sts {
				g.Expect(s.State).NotTo(Equal("Leader"), "%s must not lead without a quorum", p)
			}
			g.Expect(sts).To(HaveKey(survivor))
			g.Expect(voters(sts[survivor])).To(ConsistOf(pods), "the survivor's configuration")
		}).WithContext(ctx).WithTimeout(8 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())

		By(fmt.Sprintf("a recovery from %s (an empty member) is refused", lost[0]))
		annotate(ctx, sc, seqv1.AnnotationRecoverFrom, lost[0])
		Eventually(func(g Gomega) {
			got, err := getCluster(ctx, sc)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Annotations).NotTo(HaveKey(seqv1.AnnotationRecoverFrom), "the refused request is removed")
			g.Expect(eventReasons(ctx, sc)).To(ContainElement("RecoveryRejected"))
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
		Expect(raftStatuses(ctx, sc, []string{survivor})[survivor].Height).To(BeNumerically(">=", st.Height))

		By(fmt.Sprintf("recovering from the survivor %s", survivor))
		began := time.Now()
		annotate(ctx, sc, seqv1.AnnotationRecoverFrom, survivor)
		waitHealthy(ctx, sc, 3, 4*time.Minute)
		summary.record("quorum loss: recover-from → Healthy 3/3", time.Since(began), "issue 7 "+survivor)
		expectVoters(ctx, sc, pods, pods)
		got, err := getCluster(ctx, sc)
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Annotations).NotTo(HaveKey(seqv1.AnnotationRecoverFrom), "the annotation is removed when done")
		Expect(eventReasons(ctx, sc)).To(ContainElement("Recovered"))
		recovery := &corev1.ConfigMap{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sc.Name + "-recovery"}, recovery)).NotTo(Succeed(),
			"the recovery ConfigMap is deleted when done")

		By("one chain, continued from the survivor's head, with every acknowledged transaction")
		_, final := waitRaftLeader(ctx, sc, pods, "", 15*time.Second)
		Expect(final.Height).To(BeNumerically(">", st.Height))
		waitHeight(ctx, sc, pods, final.Height, time.Minute)
		expectOneHashPerHeight(ctx, sc, pods, 1, final.Height)
		expectAckedTxsEverywhere(ctx, sc, pods, acked)
	})
})

// annotate sets one annotation on the cluster.
func annotate(ctx context.Context, sc *seqv1.SequencerCluster, key, value string) {
	_, stderr, err := kubectl(ctx, "annotate", "--overwrite", "seqc", "-n", sc.Namespace, sc.Name, key+"="+value)
	Expect(err).NotTo(HaveOccurred(), stderr)
}

// eventReasons are the reasons of the events about the cluster (events.k8s.io/v1, as the operator records them).
func eventReasons(ctx context.Context, sc *seqv1.SequencerCluster) []string {
	var list eventsv1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(sc.Namespace)); err != nil {
		return []string{"cannot list events: " + err.Error()}
	}
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name == sc.Name && strings.EqualFold(e.Regarding.Kind, "SequencerCluster") {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}
