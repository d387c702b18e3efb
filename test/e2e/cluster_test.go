//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

func objMeta(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

func namespaceObject(meta metav1.ObjectMeta) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: meta}
}

// newSequencerCluster is the suite's cluster: 100 ms blocks, small volumes, a generated key, the default
// Raft timings (the CRD's defaults).
func newSequencerCluster(ns, name string, replicas int32) *seqv1.SequencerCluster {
	size := resource.MustParse("64Mi")
	return &seqv1.SequencerCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: seqv1.SequencerClusterSpec{
			Replicas:  &replicas,
			Image:     nodeImage,
			ChainID:   name + "-chain",
			BlockTime: blockTime.String(),
			Storage:   seqv1.StorageSpec{Size: &size, RetentionPolicy: seqv1.PVCRetain},
			// The default 50 ms leader lease deposes a healthy leader whenever its peers are not scheduled
			// within 50 ms; on two cores shared with a whole control plane that happens every few seconds and
			// turns every timing check into a coin toss. The lease at the heartbeat timeout keeps the specs
			// about behaviour; make bench measures the defaults.
			Raft:       seqv1.RaftSpec{LeaderLeaseTimeout: "100ms"},
			SigningKey: &seqv1.SigningKeySpec{Generate: true},
		},
	}
}

// createHealthyCluster creates a cluster and waits until it is Healthy with all replicas ready.
func createHealthyCluster(ctx context.Context, sc *seqv1.SequencerCluster) *seqv1.SequencerCluster {
	began := time.Now()
	Expect(k8s.Create(ctx, sc)).To(Succeed())
	got := waitHealthy(ctx, sc, *sc.Spec.Replicas, 3*time.Minute)
	fmt.Fprintf(GinkgoWriter, "SequencerCluster %s/%s Healthy with %d replicas after %s (leader %s)\n",
		sc.Namespace, sc.Name, *sc.Spec.Replicas, time.Since(began).Round(time.Millisecond), got.Status.Leader)
	return got
}

// getCluster reads a SequencerCluster.
func getCluster(ctx context.Context, sc *seqv1.SequencerCluster) (*seqv1.SequencerCluster, error) {
	got := &seqv1.SequencerCluster{}
	err := k8s.Get(ctx, client.ObjectKeyFromObject(sc), got)
	return got, err
}

// waitHealthy waits for phase Healthy, the given number of ready replicas and a leader in the status, with
// every member a voter.
func waitHealthy(ctx context.Context, sc *seqv1.SequencerCluster, replicas int32, timeout time.Duration) *seqv1.SequencerCluster {
	var got *seqv1.SequencerCluster
	Eventually(func(g Gomega) {
		var err error
		got, err = getCluster(ctx, sc)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Status.Phase).To(Equal(seqv1.PhaseHealthy), "phase (conditions: %s)", conditionsLine(got))
		g.Expect(got.Status.ReadyReplicas).To(Equal(replicas), "ready replicas")
		g.Expect(got.Status.Leader).NotTo(BeEmpty(), "status.leader")
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation), "observedGeneration")
		g.Expect(voterNames(got)).To(HaveLen(int(replicas)), "voters in status.members")
	}).WithContext(ctx).WithTimeout(timeout).WithPolling(500*time.Millisecond).Should(Succeed(),
		"SequencerCluster %s/%s should become Healthy with %d ready voters", sc.Namespace, sc.Name, replicas)
	return got
}

// conditionsLine is the status conditions in one line, for failure messages.
func conditionsLine(sc *seqv1.SequencerCluster) string {
	var parts []string
	for _, c := range sc.Status.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, "; ")
}

func voterNames(sc *seqv1.SequencerCluster) []string {
	var names []string
	for _, m := range sc.Status.Members {
		if m.Suffrage == "Voter" {
			names = append(names, m.Name)
		}
	}
	return names
}

// podNames are the pods of the desired replicas: <name>-0 … <name>-(n-1).
func podNames(sc *seqv1.SequencerCluster, n int32) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", sc.Name, i)
	}
	return names
}

// pvcName is the StatefulSet's claim of a pod: volume claim template "data".
func pvcName(pod string) string { return "data-" + pod }

// getPod reads a pod.
func getPod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	p := &corev1.Pod{}
	err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p)
	return p, err
}

// waitStatusFollowsRaft waits until a pod other than notPod leads in Raft, status.leader names it, and it
// carries the leader label while no other pod does. It returns the leader and how long that took from since.
// It follows whichever pod leads, so a second election on the way does not count as a stale status.
func waitStatusFollowsRaft(ctx context.Context, sc *seqv1.SequencerCluster, pods []string, notPod string, since time.Time) (string, time.Duration) {
	var leader string
	var took time.Duration
	Eventually(func(g Gomega) {
		var err error
		leader, _, err = raftLeader(ctx, sc, pods)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(leader).NotTo(Equal(notPod), "the Raft leader")
		got, err := getCluster(ctx, sc)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Status.Leader).To(Equal(leader), "status.leader")
		var list corev1.PodList
		g.Expect(k8s.List(ctx, &list, client.InNamespace(sc.Namespace), client.MatchingLabels{seqv1.LabelCluster: sc.Name})).To(Succeed())
		for _, p := range list.Items {
			if p.Name == leader {
				g.Expect(p.Labels[seqv1.LabelRole]).To(Equal(seqv1.RoleLeader), "label %s of the leader %s", seqv1.LabelRole, p.Name)
			} else {
				g.Expect(p.Labels[seqv1.LabelRole]).NotTo(Equal(seqv1.RoleLeader), "label %s of %s, not the leader", seqv1.LabelRole, p.Name)
			}
		}
		took = time.Since(since)
	}).WithContext(ctx).WithTimeout(15*time.Second).WithPolling(50*time.Millisecond).Should(Succeed(),
		"status.leader of %s/%s and the %s=leader label should name the Raft leader (not %q)", sc.Namespace, sc.Name, seqv1.LabelRole, notPod)
	return leader, took
}

// dumpNamespace writes pods, the cluster and events of a failed spec's namespace to GinkgoWriter.
func dumpNamespace(ctx context.Context, ns string) {
	for _, args := range [][]string{
		{"get", "seqc,pods,pvc", "-o", "wide", "-L", seqv1.LabelRole},
		{"get", "seqc", "-o", "yaml"},
		{"get", "events", "--sort-by=.lastTimestamp"},
	} {
		out, _ := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", lc.KubeconfigPath(), "-n", ns}, args...)...).CombinedOutput()
		fmt.Fprintf(GinkgoWriter, "--- kubectl -n %s %s\n%s\n", ns, strings.Join(args, " "), out)
	}
}

// kubectl runs the v1.37.2 kubectl built from source against the local cluster and returns stdout and stderr.
func kubectl(ctx context.Context, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", lc.KubeconfigPath()}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// kubectlApply applies a manifest from stdin.
func kubectlApply(ctx context.Context, ns, manifest string) (string, string, error) {
	cmd := exec.CommandContext(ctx, kubectlBin, "--kubeconfig", lc.KubeconfigPath(), "-n", ns, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// waitStableLeader waits until the cluster is Healthy and the same pod has led for the given time.
func waitStableLeader(ctx context.Context, sc *seqv1.SequencerCluster, pods []string, stable time.Duration) {
	var leader string
	var since time.Time
	Eventually(func(g Gomega) {
		got := waitHealthy(ctx, sc, int32(len(pods)), time.Minute)
		l, _, err := raftLeader(ctx, sc, pods)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Status.Leader).To(Equal(l), "status.leader")
		if l != leader {
			leader, since = l, time.Now()
		}
		g.Expect(time.Since(since)).To(BeNumerically(">=", stable), "time %s has led", l)
	}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(250*time.Millisecond).Should(Succeed(),
		"%s/%s should keep one leader for %s", sc.Namespace, sc.Name, stable)
}
