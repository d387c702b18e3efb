/*
Copyright 2026 The sequencer-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

var _ = Describe("A member whose node refuses to start", func() {
	It("is shown Failed with its termination message, once as an event, and left to the runbook", func() {
		ns := newNamespace()
		f := createCluster(minimalCluster(ns, "broken", 3))
		c := waitHealthy(ns, "broken", "broken-0", "broken-1", "broken-2")
		victim := "broken-2"
		if c.Status.Leader == victim {
			victim = "broken-1"
		}
		const reason = "node: raft store /data/raft/raft.db is corrupted: page 7: invalid type"

		By("the node exits at start and the kubelet backs off: " + victim)
		f.stop(victim, false)
		Eventually(func() error {
			pod := &corev1.Pod{}
			if err := k8sClient.Get(suiteCtx, client.ObjectKey{Namespace: ns, Name: victim}, pod); err != nil {
				return err
			}
			finished := metav1.Now()
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
				Name: containerName, Image: pod.Spec.Containers[0].Image, RestartCount: 3,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: crashLoopBackOff,
					Message: "back-off 40s restarting failed container=node pod=" + victim}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode: 1, Reason: "Error", Message: reason + "\n", StartedAt: finished, FinishedAt: finished}},
			}}
			return k8sClient.Status().Update(suiteCtx, pod)
		}, timeout, poll).Should(Succeed())

		Eventually(func(g Gomega) {
			st := getCluster(ns, "broken").Status
			g.Expect(st.Phase).To(Equal(seqv1.PhaseDegraded))
			g.Expect(memberState(st, victim)).To(Equal(seqv1.MemberStateFailed))
			d := meta.FindStatusCondition(st.Conditions, seqv1.ConditionDegraded)
			g.Expect(d).NotTo(BeNil())
			g.Expect(d.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(d.Reason).To(Equal(seqv1.ReasonMemberFailed))
			g.Expect(d.Message).To(Equal(victim + " failed: exited with code 1: " + reason))
		}, timeout, poll).Should(Succeed())
		Eventually(func() []string { return eventMessages(ns, "broken", seqv1.ReasonMemberFailed) }, timeout, poll).Should(
			ConsistOf(ContainSubstring(victim + " failed: exited with code 1: " + reason)))

		By("passes go on: one event, no membership change, the member stays Failed")
		_, _, before := f.snapshot()
		Consistently(func(g Gomega) {
			g.Expect(memberFailedEvents(ns, "broken")).To(HaveLen(1))
			for _, e := range memberFailedEvents(ns, "broken") {
				g.Expect(e.Series).To(BeNil(), "the event was recorded again")
				g.Expect(e.Type).To(Equal(corev1.EventTypeWarning))
			}
			_, _, calls := f.snapshot()
			g.Expect(calls).To(Equal(before))
			g.Expect(memberState(getCluster(ns, "broken").Status, victim)).To(Equal(seqv1.MemberStateFailed))
		}, 5*time.Second, 250*time.Millisecond).Should(Succeed())

		By("the runbook: wipe the member's data and delete its pod")
		f.stop(victim, true)
		Expect(k8sClient.Delete(suiteCtx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: victim}})).To(Succeed())
		Eventually(func() []string { return f.callsMatching("add " + victim) }, timeout, poll).ShouldNot(BeEmpty())
		c = waitHealthy(ns, "broken", "broken-0", "broken-1", "broken-2")
		Expect(meta.FindStatusCondition(c.Status.Conditions, seqv1.ConditionDegraded).Reason).To(Equal(seqv1.ReasonAllMembersHealthy))
		Expect(memberFailedEvents(ns, "broken")).To(HaveLen(1))
	})
})

func memberState(st seqv1.SequencerClusterStatus, name string) string {
	for _, m := range st.Members {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

func memberFailedEvents(ns, name string) []corev1.Event {
	var list corev1.EventList
	ExpectWithOffset(1, k8sClient.List(suiteCtx, &list, client.InNamespace(ns))).To(Succeed())
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.Reason == seqv1.ReasonMemberFailed {
			out = append(out, e)
		}
	}
	return out
}
