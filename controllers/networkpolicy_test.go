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
	"fmt"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

func TestBuildNetworkPolicy(t *testing.T) {
	nodes := map[string]string{"app.kubernetes.io/name": "sequencer-node", "app.kubernetes.io/instance": "c", seqv1.LabelCluster: "c"}
	members := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: nodes}}
	opLabels := map[string]string{"app.kubernetes.io/name": "sequencer-operator"}
	prometheus := networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "monitoring"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "prometheus"}},
	}
	office := networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.0/16"}}
	cases := []struct {
		name       string
		operator   OperatorPods
		apiClients []networkingv1.NetworkPolicyPeer
		wantAPI    []networkingv1.NetworkPolicyPeer
	}{
		{
			name:     "the operator in its namespace",
			operator: OperatorPods{Namespace: "seqops-system", Labels: opLabels},
			wantAPI: []networkingv1.NetworkPolicyPeer{members, {
				PodSelector:       &metav1.LabelSelector{MatchLabels: opLabels},
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "seqops-system"}},
			}},
		},
		{
			name:       "api clients after the operator, in order",
			operator:   OperatorPods{Namespace: "seqops-system", Labels: opLabels},
			apiClients: []networkingv1.NetworkPolicyPeer{prometheus, office},
			wantAPI: []networkingv1.NetworkPolicyPeer{members, {
				PodSelector:       &metav1.LabelSelector{MatchLabels: opLabels},
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "seqops-system"}},
			}, prometheus, office},
		},
		{
			name:     "an operator of unknown namespace is matched by its labels in every namespace",
			operator: OperatorPods{Labels: opLabels},
			wantAPI: []networkingv1.NetworkPolicyPeer{members, {
				PodSelector:       &metav1.LabelSelector{MatchLabels: opLabels},
				NamespaceSelector: &metav1.LabelSelector{},
			}},
		},
		{
			name:     "no operator labels admit no operator peer rather than every pod",
			operator: OperatorPods{Namespace: "seqops-system"},
			wantAPI:  []networkingv1.NetworkPolicyPeer{members},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &seqv1.SequencerCluster{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"},
				Spec: seqv1.SequencerClusterSpec{NetworkPolicy: &seqv1.NetworkPolicySpec{Enabled: true, APIClients: tc.apiClients}}}
			np := buildNetworkPolicy(c, tc.operator)
			if np.Name != "c-nodes" || np.Namespace != "ns" || np.Labels[seqv1.LabelCluster] != "c" {
				t.Errorf("metadata: %+v", np.ObjectMeta)
			}
			if !equality.Semantic.DeepEqual(np.Spec.PodSelector.MatchLabels, nodes) {
				t.Errorf("policy selects %v, want the cluster's pods %v", np.Spec.PodSelector.MatchLabels, nodes)
			}
			if len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != networkingv1.PolicyTypeIngress {
				t.Errorf("policy types %v, want Ingress only", np.Spec.PolicyTypes)
			}
			if len(np.Spec.Ingress) != 2 {
				t.Fatalf("want a Raft rule and an API rule, got %d rules", len(np.Spec.Ingress))
			}
			tcp := corev1.ProtocolTCP
			wantPort := func(p int) []networkingv1.NetworkPolicyPort {
				return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptr.To(intstr.FromInt(p))}}
			}
			raft, api := np.Spec.Ingress[0], np.Spec.Ingress[1]
			if !equality.Semantic.DeepEqual(raft.Ports, wantPort(7000)) || !equality.Semantic.DeepEqual(raft.From, []networkingv1.NetworkPolicyPeer{members}) {
				t.Errorf("Raft rule: %+v, want port 7000 from the cluster's pods only", raft)
			}
			if !equality.Semantic.DeepEqual(api.Ports, wantPort(8080)) {
				t.Errorf("API rule ports: %+v, want 8080", api.Ports)
			}
			if !equality.Semantic.DeepEqual(api.From, tc.wantAPI) {
				t.Errorf("API rule peers:\n got %+v\nwant %+v", api.From, tc.wantAPI)
			}
		})
	}
}

var _ = Describe("SequencerCluster NetworkPolicy", func() {
	It("refuses apiClients peers that a NetworkPolicy would refuse, naming the field", func() {
		ns := newNamespace()
		for i, tc := range []struct {
			peer networkingv1.NetworkPolicyPeer
			msg  string
		}{
			{networkingv1.NetworkPolicyPeer{}, "each peer must set podSelector, namespaceSelector or ipBlock"},
			{networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"},
				PodSelector: &metav1.LabelSelector{}}, "a peer with ipBlock must not also set podSelector or namespaceSelector"},
		} {
			c := minimalCluster(ns, fmt.Sprintf("badnp-%d", i), 1)
			c.Spec.NetworkPolicy = &seqv1.NetworkPolicySpec{Enabled: true, APIClients: []networkingv1.NetworkPolicyPeer{tc.peer}}
			err := k8sClient.Create(suiteCtx, c)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			Expect(err.Error()).To(And(ContainSubstring("spec.networkPolicy.apiClients"), ContainSubstring(tc.msg)))
		}
	})

	It("is created when enabled, repaired after an edit and deleted when disabled", func() {
		ns := newNamespace()
		c := minimalCluster(ns, "netpol", 1)
		c.Spec.NetworkPolicy = &seqv1.NetworkPolicySpec{Enabled: true, APIClients: []networkingv1.NetworkPolicyPeer{
			{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "submitter"}}},
		}}
		createCluster(c)
		waitHealthy(ns, "netpol", "netpol-0")
		key := client.ObjectKey{Namespace: ns, Name: "netpol-nodes"}

		np := &networkingv1.NetworkPolicy{}
		Expect(k8sClient.Get(suiteCtx, key, np)).To(Succeed())
		Expect(metav1.GetControllerOf(np)).NotTo(BeNil())
		Expect(metav1.GetControllerOf(np).Name).To(Equal("netpol"))
		Expect(np.Spec.PodSelector.MatchLabels).To(HaveKeyWithValue(seqv1.LabelCluster, "netpol"))
		Expect(np.Spec.Ingress).To(HaveLen(2))
		Expect(np.Spec.Ingress[1].From).To(ContainElement(HaveField("PodSelector.MatchLabels", HaveKeyWithValue("app", "submitter"))))

		By("taking back a rule that opens the Raft port to everyone")
		np.Spec.Ingress[0].From = nil
		Expect(k8sClient.Update(suiteCtx, np)).To(Succeed())
		Eventually(func(g Gomega) {
			got := &networkingv1.NetworkPolicy{}
			g.Expect(k8sClient.Get(suiteCtx, key, got)).To(Succeed())
			g.Expect(got.Spec.Ingress).To(HaveLen(2))
			g.Expect(got.Spec.Ingress[0].From).To(HaveLen(1))
			g.Expect(got.Spec.Ingress[0].From[0].PodSelector.MatchLabels).To(HaveKeyWithValue(seqv1.LabelCluster, "netpol"))
		}, timeout, poll).Should(Succeed())

		By("recreating it after a deletion")
		Expect(k8sClient.Delete(suiteCtx, np)).To(Succeed())
		Eventually(func() error { return k8sClient.Get(suiteCtx, key, &networkingv1.NetworkPolicy{}) }, timeout, poll).Should(Succeed())

		By("deleting it when spec.networkPolicy.enabled is turned off")
		patchCluster(ns, "netpol", func(c *seqv1.SequencerCluster) { c.Spec.NetworkPolicy.Enabled = false })
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(suiteCtx, key, &networkingv1.NetworkPolicy{}))
		}, timeout, poll).Should(BeTrue())

		By("leaving alone a NetworkPolicy of the same name the operator does not own")
		mine := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "netpol-nodes", Namespace: ns},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{}}}
		Expect(k8sClient.Create(suiteCtx, mine)).To(Succeed())
		// A pass runs at least every resync (2s in this suite); give it two.
		Consistently(func() error { return k8sClient.Get(suiteCtx, key, &networkingv1.NetworkPolicy{}) }, "5s", "200ms").Should(Succeed())
	})
})
