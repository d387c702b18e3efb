//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// (h) a pod whose PVC was deleted comes back empty and rejoins as non-voter, then voter; no second cluster.
var _ = Describe("Disk loss", Label(LabelDiskLoss, LabelDisruptive), func() {
	It("takes a pod that lost its volume back as a non-voter, then a voter, without a second cluster", func(ctx SpecContext) {
		ns := createNamespace(ctx, "disk")
		sc := createHealthyCluster(ctx, newSequencerCluster(ns, "disk", 3))
		pods := podNames(sc, 3)
		leader, st := waitRaftLeader(ctx, sc, pods, "", 10*time.Second)
		victim := without(pods, leader)[1]
		waitHeight(ctx, sc, pods, st.Height, 30*time.Second)
		oldPVC := &corev1.PersistentVolumeClaim{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pvcName(victim)}, oldPVC)).To(Succeed())
		history := watchSuffrage(ctx, sc, pods, victim)

		By(fmt.Sprintf("deleting the PVC of %s, then the pod (leader %s, height %d)", victim, leader, st.Height))
		_, stderr, err := kubectl(ctx, "delete", "pvc", "-n", ns, pvcName(victim), "--wait=false")
		Expect(err).NotTo(HaveOccurred(), stderr)
		began := time.Now()
		_, stderr, err = kubectl(ctx, "delete", "pod", "-n", ns, victim)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Eventually(func(g Gomega) {
			pvc := &corev1.PersistentVolumeClaim{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pvcName(victim)}, pvc)).To(Succeed())
			g.Expect(pvc.UID).NotTo(Equal(oldPVC.UID), "a new PVC")
			g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
		}).WithContext(ctx).WithTimeout(2*time.Minute).WithPolling(500*time.Millisecond).Should(Succeed(), "%s should get a new, empty volume", victim)

		waitHealthy(ctx, sc, 3, 3*time.Minute)
		expectVoters(ctx, sc, pods, pods)
		summary.record("disk loss: pod deleted → voter again", time.Since(began), "(h) "+victim)
		By("one cluster: one leader, one configuration, one chain")
		Eventually(func(g Gomega) {
			sts := raftStatuses(ctx, sc, pods)
			g.Expect(sts).To(HaveLen(3), "pods answering /raft")
			var leaders []string
			for p, s := range sts {
				if s.State == "Leader" {
					leaders = append(leaders, p)
				}
				g.Expect(configIDs(s)).To(ConsistOf(pods), "members as %s sees them", p)
				g.Expect(s.LeaderID).To(Equal(sts[pods[0]].LeaderID), "the leader as %s sees it", p)
			}
			g.Expect(leaders).To(HaveLen(1), "leaders")
		}).WithContext(ctx).WithTimeout(30*time.Second).Should(Succeed(), "one Raft group with one leader that every pod agrees on")
		_, final := waitRaftLeader(ctx, sc, pods, "", 15*time.Second)
		waitHeight(ctx, sc, pods, final.Height, time.Minute)
		expectOneHashPerHeight(ctx, sc, pods, 1, final.Height)

		// Checked last, so the safety checks above run even when this fails. DESIGN §3 invariant 6 and issue 5
		// item 6h: the member comes back as a non-voter and autopilot promotes it.
		seen := history.stop()
		fmt.Fprintf(GinkgoWriter, "Membership of %s as the leader reported it: %v\n", victim, seen)
		Expect(seen).To(ContainElement("Nonvoter"), "%s should rejoin as a non-voter first", victim)
		Expect(seen[len(seen)-1]).To(Equal("Voter"), "%s should end as a voter", victim)
	})
})

// suffrageWatch records how the leader's configuration lists one member over time: "absent", "Nonvoter" or
// "Voter", one entry per change.
type suffrageWatch struct {
	mu      sync.Mutex
	history []string
	cancel  context.CancelFunc
	done    chan struct{}
}

// watchSuffrage polls the leader's /raft every 50 ms for member's suffrage.
func watchSuffrage(ctx context.Context, sc *seqv1.SequencerCluster, pods []string, member string) *suffrageWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &suffrageWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			if _, st, err := raftLeader(ctx, sc, pods); err == nil {
				now := "absent"
				for _, s := range st.Configuration.Servers {
					if s.ID == member {
						now = s.Suffrage
					}
				}
				w.mu.Lock()
				if len(w.history) == 0 || w.history[len(w.history)-1] != now {
					w.history = append(w.history, now)
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *suffrageWatch) stop() []string {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.history
}
