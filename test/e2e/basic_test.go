//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// (a) create 3 replicas → phase Healthy; the LEADER printer column names the pod whose /raft says Leader;
// the leader Service's endpoints are that pod.
var _ = Describe("A new SequencerCluster", Label(LabelBasic), func() {
	It("becomes Healthy with three voters; LEADER and the leader Service name the Raft leader", func(ctx SpecContext) {
		ns := createNamespace(ctx, "basic")
		sc := createHealthyCluster(ctx, newSequencerCluster(ns, "basic", 3))
		pods := podNames(sc, 3)

		By("every node reporting the same three voters")
		Eventually(func(g Gomega) {
			sts := raftStatuses(ctx, sc, pods)
			g.Expect(sts).To(HaveLen(3), "pods answering /raft")
			for p, st := range sts {
				g.Expect(voters(st)).To(ConsistOf(pods), "voters as %s sees them", p)
			}
		}).WithContext(ctx).WithTimeout(30*time.Second).Should(Succeed(), "three voters on every node")

		By("the LEADER column of `kubectl get seqc` naming the pod whose /raft says Leader")
		Eventually(func(g Gomega) {
			leader, _, err := raftLeader(ctx, sc, pods)
			g.Expect(err).NotTo(HaveOccurred())
			out, stderr, err := kubectl(ctx, "get", "seqc", "-n", ns, sc.Name)
			g.Expect(err).NotTo(HaveOccurred(), stderr)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			g.Expect(lines).To(HaveLen(2), "header and one row:\n%s", out)
			header, row := strings.Fields(lines[0]), strings.Fields(lines[1])
			g.Expect(header).To(Equal([]string{"NAME", "READY", "LEADER", "TERM", "HEIGHT", "PHASE", "AGE"}))
			g.Expect(row[2]).To(Equal(leader), "LEADER column in:\n%s", out)
			g.Expect(row[1]).To(Equal("3/3"), "READY column")
			g.Expect(row[5]).To(Equal("Healthy"), "PHASE column")
			fmt.Fprintf(GinkgoWriter, "kubectl get seqc:\n%s", out)
		}).WithContext(ctx).WithTimeout(15*time.Second).Should(Succeed(), "the LEADER printer column should name the Raft leader")

		By("the leader Service's endpoints being that pod")
		Eventually(func(g Gomega) {
			leader, _, err := raftLeader(ctx, sc, pods)
			g.Expect(err).NotTo(HaveOccurred())
			pod, err := getPod(ctx, ns, leader)
			g.Expect(err).NotTo(HaveOccurred())
			var slices discoveryv1.EndpointSliceList
			g.Expect(k8s.List(ctx, &slices, client.InNamespace(ns),
				client.MatchingLabels{discoveryv1.LabelServiceName: sc.Name + "-leader"})).To(Succeed())
			var names, ips []string
			for _, s := range slices.Items {
				for _, e := range s.Endpoints {
					if e.Conditions.Ready != nil && !*e.Conditions.Ready {
						continue
					}
					if e.TargetRef != nil {
						names = append(names, e.TargetRef.Name)
					}
					ips = append(ips, e.Addresses...)
				}
			}
			g.Expect(names).To(ConsistOf(leader), "ready endpoints of Service %s-leader", sc.Name)
			g.Expect(ips).To(ConsistOf(pod.Status.PodIP), "endpoint addresses of Service %s-leader", sc.Name)
			// The same name from the host, as a client of the leader Service would use it.
			resolved, err := lc.Resolve(fmt.Sprintf("%s-leader.%s.svc.cluster.local", sc.Name, ns))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(resolved).To(ConsistOf(pod.Status.PodIP), "%s-leader.%s.svc resolves to the leader", sc.Name, ns)
		}).WithContext(ctx).WithTimeout(20*time.Second).Should(Succeed(), "the leader Service should point at the Raft leader only")
	})
})
