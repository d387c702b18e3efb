//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// Issue 7 item 4: a follower's Raft store is damaged on disk. Its node refuses to start and says which file;
// the kubelet puts that in the pod's status; the operator shows the member Failed (condition and one event) and
// changes no membership; the chain goes on with the other two. The runbook (delete the PVC and the pod) brings
// it back as a non-voter that autopilot promotes: Healthy 3/3 on one chain.
var _ = Describe("Disk fault", Label(LabelDiskFault, LabelDisruptive), func() {
	It("shows a member with a damaged raft.db as Failed, naming the file, until the runbook replaces it", func(ctx SpecContext) {
		ns := createNamespace(ctx, "diskfault")
		sc := createHealthyCluster(ctx, newSequencerCluster(ns, "fault", 3))
		pods := podNames(sc, 3)
		leader, st := waitRaftLeader(ctx, sc, pods, "", 10*time.Second)
		victim := without(pods, leader)[0]
		waitHeight(ctx, sc, pods, st.Height, 30*time.Second)
		raftDB := filepath.Join(volumeHostPath(ctx, ns, pvcName(victim)), "raft", "raft.db")
		Expect(raftDB).To(BeAnExistingFile())

		By(fmt.Sprintf("damaging %s of %s (leader %s, height %d) and restarting its pod", raftDB, victim, leader, st.Height))
		// Frozen first, so the node writes nothing over the damage; then its pod is replaced, so the first
		// start the kubelet reports is one on the damaged volume.
		old, err := getPod(ctx, ns, victim)
		Expect(err).NotTo(HaveOccurred())
		Expect(lc.KillPodProcess(ctx, ns, victim, "", syscall.SIGSTOP)).To(Succeed())
		Expect(scribbleDataPages(raftDB)).To(Succeed())
		_, stderr, err := kubectl(ctx, "delete", "pod", "-n", ns, victim, "--grace-period=1")
		Expect(err).NotTo(HaveOccurred(), stderr)
		const named = "/data/raft/raft.db"

		By("the pod's status carries the node's reason: exit code and termination message")
		Eventually(func(g Gomega) {
			pod, err := getPod(ctx, ns, victim)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pod.UID).NotTo(Equal(old.UID), "a new pod")
			g.Expect(pod.Status.ContainerStatuses).To(HaveLen(1))
			cs := pod.Status.ContainerStatuses[0]
			g.Expect(cs.RestartCount).To(BeNumerically(">=", 1))
			g.Expect(cs.LastTerminationState.Terminated).NotTo(BeNil(), "lastState.terminated")
			g.Expect(cs.LastTerminationState.Terminated.ExitCode).To(BeEquivalentTo(1))
			g.Expect(cs.LastTerminationState.Terminated.Message).To(ContainSubstring(named))
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())

		By("the operator shows the member Failed: member state, Degraded=MemberFailed, a MemberFailed event")
		Eventually(func(g Gomega) {
			got, err := getCluster(ctx, sc)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Phase).To(Equal(seqv1.PhaseDegraded), "phase (conditions: %s)", conditionsLine(got))
			g.Expect(memberState(got, victim)).To(Equal(seqv1.MemberStateFailed))
			d := apimeta.FindStatusCondition(got.Status.Conditions, seqv1.ConditionDegraded)
			g.Expect(d).NotTo(BeNil())
			g.Expect(d.Reason).To(Equal(seqv1.ReasonMemberFailed))
			g.Expect(d.Message).To(ContainSubstring(victim + " failed: exited with code 1: node: "))
			g.Expect(d.Message).To(ContainSubstring(named))
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
		Eventually(func() []string { return eventNotes(ctx, sc, seqv1.ReasonMemberFailed) }).WithContext(ctx).WithTimeout(30*time.Second).
			Should(ConsistOf(And(ContainSubstring(victim), ContainSubstring(named))), "MemberFailed events of %s", sc.Name)
		fmt.Fprintf(GinkgoWriter, "MemberFailed event: %s\n", eventNotes(ctx, sc, seqv1.ReasonMemberFailed)[0])

		By("no membership change while it is Failed; the chain goes on with the other two")
		_, before := waitRaftLeader(ctx, sc, without(pods, victim), "", 10*time.Second)
		Consistently(func(g Gomega) {
			// Every survivor's configuration, not only the leader's: an election between two polls is no fault.
			sts := raftStatuses(ctx, sc, without(pods, victim))
			g.Expect(sts).NotTo(BeEmpty(), "survivors answering /raft")
			for p, s := range sts {
				g.Expect(voters(s)).To(ConsistOf(pods), "voters as %s sees them", p)
			}
			got, err := getCluster(ctx, sc)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(memberState(got, victim)).To(Equal(seqv1.MemberStateFailed))
			g.Expect(eventNotes(ctx, sc, seqv1.ReasonMemberFailed)).To(HaveLen(1), "one event per failure, not one per pass")
		}).WithContext(ctx).WithTimeout(6 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
		waitHeight(ctx, sc, without(pods, victim), before.Height+20, 30*time.Second)
		Expect(eventNotes(ctx, sc, seqv1.ReasonMemberFailed)).To(HaveLen(1), "one event per failure, not one per pass")

		By("the runbook: delete the member's PVC and pod")
		history := watchSuffrage(ctx, sc, pods, victim)
		oldPVC := &corev1.PersistentVolumeClaim{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pvcName(victim)}, oldPVC)).To(Succeed())
		began := time.Now()
		_, stderr, err = kubectl(ctx, "delete", "pvc", "-n", ns, pvcName(victim), "--wait=false")
		Expect(err).NotTo(HaveOccurred(), stderr)
		_, stderr, err = kubectl(ctx, "delete", "pod", "-n", ns, victim)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Eventually(func(g Gomega) {
			pvc := &corev1.PersistentVolumeClaim{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pvcName(victim)}, pvc)).To(Succeed())
			g.Expect(pvc.UID).NotTo(Equal(oldPVC.UID), "a new PVC")
		}).WithContext(ctx).WithTimeout(2*time.Minute).WithPolling(500*time.Millisecond).Should(Succeed(), "%s should get a new, empty volume", victim)

		got := waitHealthy(ctx, sc, 3, 3*time.Minute)
		summary.record("disk fault: runbook → voter again", time.Since(began), "issue 7 "+victim)
		Expect(memberState(got, victim)).NotTo(Equal(seqv1.MemberStateFailed))
		Expect(apimeta.FindStatusCondition(got.Status.Conditions, seqv1.ConditionDegraded).Reason).To(Equal(seqv1.ReasonAllMembersHealthy))
		expectVoters(ctx, sc, pods, pods)

		By("one chain: one block hash per height on every pod")
		_, final := waitRaftLeader(ctx, sc, pods, "", 15*time.Second)
		waitHeight(ctx, sc, pods, final.Height, time.Minute)
		expectOneHashPerHeight(ctx, sc, pods, 1, final.Height)

		seen := history.stop()
		fmt.Fprintf(GinkgoWriter, "Membership of %s as the leader reported it: %v\n", victim, seen)
		Expect(seen).To(ContainElement("Nonvoter"), "%s should rejoin as a non-voter first", victim)
		Expect(seen[len(seen)-1]).To(Equal("Voter"), "%s should end as a voter", victim)
	})
})

// volumeHostPath is the host directory behind a claim: the local provisioner's hostPath volume.
func volumeHostPath(ctx context.Context, ns, claim string) string {
	pvc := &corev1.PersistentVolumeClaim{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: claim}, pvc)).To(Succeed())
	Expect(pvc.Spec.VolumeName).NotTo(BeEmpty(), "claim %s is bound", claim)
	pv := &corev1.PersistentVolume{}
	Expect(k8s.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv)).To(Succeed())
	Expect(pv.Spec.HostPath).NotTo(BeNil(), "volume %s is a hostPath volume", pv.Name)
	return pv.Spec.HostPath.Path
}

// scribbleDataPages overwrites every page of a bolt file after its two meta pages with garbage, as
// pkg/sequencer's disk fault test does.
func scribbleDataPages(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	garbage := []byte(strings.Repeat("\xde\xad\xbe\xef", 16))
	for off := int64(8192); off < info.Size(); off += int64(len(garbage)) {
		if _, err := f.WriteAt(garbage, off); err != nil {
			return err
		}
	}
	return f.Sync()
}

func memberState(sc *seqv1.SequencerCluster, name string) string {
	for _, m := range sc.Status.Members {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

// eventNotes are the notes of the cluster's events with the given reason.
func eventNotes(ctx context.Context, sc *seqv1.SequencerCluster, reason string) []string {
	var list eventsv1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(sc.Namespace)); err != nil {
		return []string{"cannot list events: " + err.Error()}
	}
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Name == sc.Name && e.Reason == reason {
			notes = append(notes, e.Note)
		}
	}
	return notes
}
