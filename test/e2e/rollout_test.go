//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// (e) change the image tag or a node setting → rolling update leader-last, no gap beyond the failover bound.
var _ = Describe("Rolling update", Label(LabelRollingUpdate), func() {
	It("replaces the pods one at a time, the leader last, when the image tag changes", func(ctx SpecContext) {
		ns := createNamespace(ctx, "rollout")
		sc := createHealthyCluster(ctx, newSequencerCluster(ns, "rollout", 3))
		pods := podNames(sc, 3)
		waitStableLeader(ctx, sc, pods, 2*time.Second)
		leader, st := waitRaftLeader(ctx, sc, pods, "", 10*time.Second)
		uids := podUIDs(ctx, ns, pods)
		watch := watchPodReplacements(ctx, sc, uids)

		By(fmt.Sprintf("changing the image tag to v0.1.1 (leader %s, height %d)", leader, st.Height))
		began := time.Now()
		patch := []byte(`{"spec":{"image":"ghcr.io/seqops/sequencer-node:v0.1.1"}}`)
		Expect(k8s.Patch(ctx, &seqv1.SequencerCluster{ObjectMeta: objMeta(ns, sc.Name)}, client.RawPatch(types.MergePatchType, patch))).To(Succeed())

		Eventually(func(g Gomega) {
			for _, p := range pods {
				pod, err := getPod(ctx, ns, p)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pod.UID).NotTo(Equal(uids[p]), "pod %s replaced", p)
				g.Expect(pod.Spec.Containers[0].Image).To(HaveSuffix(":v0.1.1"), "image of %s", p)
			}
		}).WithContext(ctx).WithTimeout(4*time.Minute).WithPolling(time.Second).Should(Succeed(), "every pod should be replaced with the new image")
		waitHealthy(ctx, sc, 3, 2*time.Minute)
		summary.record("rolling update: 3 pods replaced, Healthy", time.Since(began), "(e)")

		order, leaders := watch.stop()
		fmt.Fprintf(GinkgoWriter, "Replacement order: %v; Raft leader just before each: %v\n", order, leaders)
		Expect(order).To(HaveLen(3), "each pod replaced exactly once")
		// Whether a pod led when it was stopped is read from that incarnation's own log, not from a sample:
		// the operator replaces the old leader within milliseconds of the hand-over, faster than any poll.
		// On SIGTERM a node that leads hands leadership over with reason "resign"; a follower logs nothing.
		for _, p := range order {
			Expect(ledWhenStopped(ns, p, uids[p])).To(BeFalse(), "%s was replaced while it led (order %v, leaders %v)", p, order, leaders)
		}
		Expect(leaders[1]).To(Equal(order[2]), "leader last: the pod that led while the followers were replaced goes last (order %v, leaders %v)", order, leaders)

		_, final := waitRaftLeader(ctx, sc, pods, "", 15*time.Second)
		waitHeight(ctx, sc, pods, final.Height, 30*time.Second)
		gap, at := blockGap(ctx, sc, pods[0], st.Height, final.Height)
		summary.record("rolling update: largest block gap", gap, fmt.Sprintf("(e) before height %d", at))
		Expect(gap).To(BeNumerically("<=", failoverBound), "largest block gap during the rollout")
		expectOneHashPerHeight(ctx, sc, pods, 1, final.Height)
	})
})

// ledWhenStopped reads the container log that the local cluster keeps for one incarnation of a pod and
// reports whether its node handed leadership over because it was told to stop.
func ledWhenStopped(ns, pod string, uid types.UID) bool {
	logs, err := filepath.Glob(filepath.Join(lc.DataDir(), "kubelet", "pods", fmt.Sprintf("%s_%s_%s", ns, pod, uid), "logs", "*", "*.log"))
	Expect(err).NotTo(HaveOccurred())
	Expect(logs).NotTo(BeEmpty(), "the logs of %s (uid %s) should be kept by the local cluster", pod, uid)
	for _, f := range logs {
		data, err := os.ReadFile(f)
		Expect(err).NotTo(HaveOccurred())
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, `"msg":"Handed leadership over"`) && strings.Contains(line, `"reason":"resign"`) {
				return true
			}
		}
	}
	return false
}

// podUIDs maps pod names to their current UIDs.
func podUIDs(ctx context.Context, ns string, pods []string) map[string]types.UID {
	out := map[string]types.UID{}
	for _, p := range pods {
		pod, err := getPod(ctx, ns, p)
		Expect(err).NotTo(HaveOccurred())
		out[p] = pod.UID
	}
	return out
}

// replacementWatch records the order in which pods lose their original UID (deleted or recreated), and which
// pod led in Raft at the poll just before each replacement was seen.
type replacementWatch struct {
	mu      sync.Mutex
	order   []string
	leaders []string
	cancel  context.CancelFunc
	done    chan struct{}
}

// watchPodReplacements polls the Raft leader and then the pods every 20 ms.
func watchPodReplacements(ctx context.Context, sc *seqv1.SequencerCluster, uids map[string]types.UID) *replacementWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &replacementWatch{cancel: cancel, done: make(chan struct{})}
	seen := map[string]bool{}
	var names []string
	for n := range uids {
		names = append(names, n)
	}
	go func() {
		defer close(w.done)
		lastLeader, _, _ := raftLeader(ctx, sc, names)
		for ctx.Err() == nil {
			// The leader is sampled before the pods are looked at: the operator replaces the old leader
			// within milliseconds of the leader change, so a sample taken after the pod check would still
			// name the old leader for a replacement that happened after the change.
			if l, _, err := raftLeader(ctx, sc, names); err == nil {
				lastLeader = l
			}
			for name, uid := range uids {
				if seen[name] {
					continue
				}
				pod := &corev1.Pod{}
				err := k8s.Get(ctx, client.ObjectKey{Namespace: sc.Namespace, Name: name}, pod)
				if (err == nil && (pod.UID != uid || pod.DeletionTimestamp != nil)) || apierrors.IsNotFound(err) {
					seen[name] = true
					w.mu.Lock()
					w.order = append(w.order, name)
					w.leaders = append(w.leaders, lastLeader)
					w.mu.Unlock()
				}
			}

			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return w
}

// stop ends the watch and returns the pods in the order they were replaced and the leader before each.
func (w *replacementWatch) stop() ([]string, []string) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.order, w.leaders
}
