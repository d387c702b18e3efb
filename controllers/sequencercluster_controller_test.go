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
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

const (
	timeout = 30 * time.Second
	poll    = 50 * time.Millisecond
)

var nsCounter atomic.Int32

func newNamespace() string {
	ns := fmt.Sprintf("seqc-test-%d", nsCounter.Add(1))
	Expect(k8sClient.Create(suiteCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	Expect(k8sClient.Create(suiteCtx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}})).To(Succeed())
	return ns
}

func minimalCluster(ns, name string, replicas int32) *seqv1.SequencerCluster {
	return &seqv1.SequencerCluster{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       seqv1.SequencerClusterSpec{Replicas: ptr.To(replicas), ChainID: "test-chain"},
	}
}

// createCluster registers a fake Raft group for the cluster, creates it, and hands the fake the API token
// once the operator generated it.
func createCluster(c *seqv1.SequencerCluster) *fakeRaft {
	f := newFakeRaft(c.Name, "", 9)
	fakesMu.Lock()
	fakes[types.NamespacedName{Namespace: c.Namespace, Name: c.Name}] = f
	fakesMu.Unlock()
	DeferCleanup(func() {
		fakesMu.Lock()
		delete(fakes, types.NamespacedName{Namespace: c.Namespace, Name: c.Name})
		fakesMu.Unlock()
		f.close()
	})
	Expect(k8sClient.Create(suiteCtx, c)).To(Succeed())
	sec := &corev1.Secret{}
	Eventually(func() error {
		return k8sClient.Get(suiteCtx, client.ObjectKey{Namespace: c.Namespace, Name: c.Name + "-api-token"}, sec)
	}, timeout, poll).Should(Succeed())
	f.mu.Lock()
	f.token = string(sec.Data["token"])
	f.mu.Unlock()
	return f
}

func getCluster(ns, name string) *seqv1.SequencerCluster {
	c := &seqv1.SequencerCluster{}
	ExpectWithOffset(1, k8sClient.Get(suiteCtx, client.ObjectKey{Namespace: ns, Name: name}, c)).To(Succeed())
	return c
}

func voters(st seqv1.SequencerClusterStatus) []string {
	var out []string
	for _, m := range st.Members {
		if m.Suffrage == nodeapi.SuffrageVoter {
			out = append(out, m.Name)
		}
	}
	return out
}

// waitHealthy waits until the cluster is Healthy with the given voters and returns it.
func waitHealthy(ns, name string, want ...string) *seqv1.SequencerCluster {
	var c *seqv1.SequencerCluster
	EventuallyWithOffset(1, func(g Gomega) {
		c = &seqv1.SequencerCluster{}
		g.Expect(k8sClient.Get(suiteCtx, client.ObjectKey{Namespace: ns, Name: name}, c)).To(Succeed())
		g.Expect(c.Status.Phase).To(Equal(seqv1.PhaseHealthy))
		g.Expect(voters(c.Status)).To(ConsistOf(want))
		g.Expect(c.Status.ObservedGeneration).To(Equal(c.Generation))
	}, timeout, poll).Should(Succeed())
	return c
}

func eventReasons(ns, name string) []string {
	var list corev1.EventList
	ExpectWithOffset(1, k8sClient.List(suiteCtx, &list, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

func eventMessages(ns, name, reason string) []string {
	var list corev1.EventList
	ExpectWithOffset(1, k8sClient.List(suiteCtx, &list, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}

func podRole(ns, pod string) string {
	p := &corev1.Pod{}
	if err := k8sClient.Get(suiteCtx, client.ObjectKey{Namespace: ns, Name: pod}, p); err != nil {
		return ""
	}
	return p.Labels[seqv1.LabelRole]
}

func patchCluster(ns, name string, mutate func(*seqv1.SequencerCluster)) {
	EventuallyWithOffset(1, func() error {
		c := &seqv1.SequencerCluster{}
		if err := k8sClient.Get(suiteCtx, client.ObjectKey{Namespace: ns, Name: name}, c); err != nil {
			return err
		}
		mutate(c)
		return k8sClient.Update(suiteCtx, c)
	}, timeout, poll).Should(Succeed())
}

var _ = Describe("SequencerCluster validation", func() {
	It("refuses invalid SequencerClusters with a message that names the field", func() {
		ns := newNamespace()
		cases := []struct {
			name   string
			mutate func(*seqv1.SequencerCluster)
			field  string
		}{
			{"zero replicas", func(c *seqv1.SequencerCluster) { c.Spec.Replicas = ptr.To[int32](0) }, "spec.replicas"},
			{"ten replicas", func(c *seqv1.SequencerCluster) { c.Spec.Replicas = ptr.To[int32](10) }, "spec.replicas"},
			{"no chain ID", func(c *seqv1.SequencerCluster) { c.Spec.ChainID = "" }, "spec.chainID"},
			{"chain ID with spaces", func(c *seqv1.SequencerCluster) { c.Spec.ChainID = "my chain" }, "spec.chainID"},
			{"malformed block time", func(c *seqv1.SequencerCluster) { c.Spec.BlockTime = "fast" }, "spec.blockTime"},
			{"block time too short", func(c *seqv1.SequencerCluster) { c.Spec.BlockTime = "1ms" }, "blockTime must be between 10ms and 1h"},
			{"election shorter than heartbeat", func(c *seqv1.SequencerCluster) {
				c.Spec.Raft = seqv1.RaftSpec{HeartbeatTimeout: "500ms", ElectionTimeout: "200ms"}
			}, "raft.electionTimeout must be greater than or equal to raft.heartbeatTimeout"},
			{"lease longer than heartbeat", func(c *seqv1.SequencerCluster) {
				c.Spec.Raft = seqv1.RaftSpec{LeaderLeaseTimeout: "1s"}
			}, "raft.leaderLeaseTimeout must be less than or equal to raft.heartbeatTimeout"},
			{"TLS secret and issuer", func(c *seqv1.SequencerCluster) {
				c.Spec.TLS = &seqv1.TLSSpec{Enabled: true, SecretName: "s", IssuerRef: &seqv1.IssuerReference{Name: "ca"}}
			}, "tls.secretName and tls.issuerRef are mutually exclusive"},
			{"TLS without a source", func(c *seqv1.SequencerCluster) { c.Spec.TLS = &seqv1.TLSSpec{Enabled: true} },
				"tls.enabled requires tls.secretName or tls.issuerRef"},
			{"signing key from both", func(c *seqv1.SequencerCluster) {
				c.Spec.SigningKey = &seqv1.SigningKeySpec{Generate: true, SecretRef: &corev1.LocalObjectReference{Name: "k"}}
			}, "signingKey must set exactly one of secretRef or generate"},
			{"bad retention policy", func(c *seqv1.SequencerCluster) { c.Spec.Storage.RetentionPolicy = "Keep" }, "spec.storage.retentionPolicy"},
			{"reserved pod label", func(c *seqv1.SequencerCluster) {
				c.Spec.PodTemplate = &seqv1.PodTemplateExtras{Labels: map[string]string{"seqops.io/role": "leader"}}
			}, "podTemplate.labels must not use the reserved prefix seqops.io/"},
			{"managed flag in extraArgs", func(c *seqv1.SequencerCluster) { c.Spec.ExtraArgs = []string{"--chain-id=other"} },
				"extraArgs must not set a flag the operator manages"},
			{"bad log level", func(c *seqv1.SequencerCluster) { c.Spec.LogLevel = "loud" }, "spec.logLevel"},
			{"name too long", func(c *seqv1.SequencerCluster) { c.Name = strings.Repeat("a", 53) }, "metadata.name must be at most 52 characters"},
		}
		for _, tc := range cases {
			c := minimalCluster(ns, "invalid", 3)
			tc.mutate(c)
			err := k8sClient.Create(suiteCtx, c)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: expected Invalid, got %v", tc.name, err)
			Expect(err.Error()).To(ContainSubstring(tc.field), tc.name)
		}

		By("refusing changes to immutable fields")
		c := minimalCluster(ns, "immutable", 1)
		c.Spec.Storage.StorageClassName = ptr.To("fast")
		Expect(k8sClient.Create(suiteCtx, c)).To(Succeed())
		updates := []struct {
			name   string
			mutate func(*seqv1.SequencerCluster)
			field  string
		}{
			{"chain ID", func(c *seqv1.SequencerCluster) { c.Spec.ChainID = "other-chain" }, "chainID is immutable"},
			{"storage class", func(c *seqv1.SequencerCluster) { c.Spec.Storage.StorageClassName = ptr.To("slow") }, "storage.storageClassName is immutable"},
			{"storage class removed", func(c *seqv1.SequencerCluster) { c.Spec.Storage.StorageClassName = nil }, "storage.storageClassName is immutable"},
			{"storage size", func(c *seqv1.SequencerCluster) { c.Spec.Storage.Size = ptr.To(resource.MustParse("20Gi")) }, "storage.size is immutable"},
		}
		for _, tc := range updates {
			cur := getCluster(ns, "immutable")
			tc.mutate(cur)
			err := k8sClient.Update(suiteCtx, cur)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: expected Invalid, got %v", tc.name, err)
			Expect(err.Error()).To(ContainSubstring(tc.field), tc.name)
		}

		By("accepting the sample")
		data, err := os.ReadFile(filepath.Join("..", "config", "samples", "seqops_v1alpha1_sequencercluster.yaml"))
		Expect(err).NotTo(HaveOccurred())
		sample := &seqv1.SequencerCluster{}
		Expect(yaml.Unmarshal(data, sample)).To(Succeed())
		sample.Namespace = ns
		Expect(k8sClient.Create(suiteCtx, sample)).To(Succeed())

		By("defaulting an accepted minimal cluster")
		got := getCluster(ns, "immutable")
		Expect(got.Spec.BlockTime).To(Equal("100ms"))
		Expect(got.Spec.Raft).To(Equal(seqv1.RaftSpec{HeartbeatTimeout: "100ms", ElectionTimeout: "400ms", LeaderLeaseTimeout: "50ms", CommitTimeout: "10ms"}))
		Expect(got.Spec.SigningKey.Generate).To(BeTrue())
		Expect(got.Spec.Storage.RetentionPolicy).To(Equal(seqv1.PVCRetain))
		Expect(got.Spec.Image).To(Equal("ghcr.io/seqops/sequencer-node:latest"))
	})
})

var _ = Describe("SequencerCluster controller", func() {
	It("creates the owned resources and repairs drift", func() {
		ns := newNamespace()
		c := minimalCluster(ns, "res", 3)
		c.Spec.Storage.RetentionPolicy = seqv1.PVCDelete
		createCluster(c)
		waitHealthy(ns, "res", "res-0", "res-1", "res-2")
		key := func(n string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: n} }

		sts := &appsv1.StatefulSet{}
		Expect(k8sClient.Get(suiteCtx, key("res"), sts)).To(Succeed())
		Expect(sts.Spec.PodManagementPolicy).To(Equal(appsv1.ParallelPodManagement))
		Expect(sts.Spec.UpdateStrategy.Type).To(Equal(appsv1.OnDeleteStatefulSetStrategyType))
		Expect(sts.Spec.ServiceName).To(Equal("res-peers"))
		Expect(sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled).To(Equal(appsv1.DeletePersistentVolumeClaimRetentionPolicyType))
		Expect(sts.Spec.VolumeClaimTemplates).To(HaveLen(1))
		Expect(sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String()).To(Equal("10Gi"))
		ctr := sts.Spec.Template.Spec.Containers[0]
		Expect(ctr.Args).To(ContainElements("run", "--id=$(POD_NAME)", "--chain-id=test-chain", "--data-dir=/data",
			"--raft-advertise=$(POD_NAME).res-peers."+ns+".svc.cluster.local:7000", "--bootstrap-id=res-0",
			"--block-time=100ms", "--election-timeout=400ms"))
		Expect(ctr.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
		Expect(ctr.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
		Expect(*ctr.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
		Expect(*sts.Spec.Template.Spec.SecurityContext.RunAsNonRoot).To(BeTrue())
		Expect(ctr.Env).To(ContainElement(HaveField("ValueFrom.ConfigMapKeyRef.Key", "initial-cluster-state")))

		peers := &corev1.Service{}
		Expect(k8sClient.Get(suiteCtx, key("res-peers"), peers)).To(Succeed())
		Expect(peers.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		Expect(peers.Spec.PublishNotReadyAddresses).To(BeTrue())
		leaderSvc := &corev1.Service{}
		Expect(k8sClient.Get(suiteCtx, key("res-leader"), leaderSvc)).To(Succeed())
		Expect(leaderSvc.Spec.Selector).To(HaveKeyWithValue(seqv1.LabelRole, seqv1.RoleLeader))
		Expect(k8sClient.Get(suiteCtx, key("res"), &corev1.Service{})).To(Succeed())
		pdb := &policyv1.PodDisruptionBudget{}
		Expect(k8sClient.Get(suiteCtx, key("res"), pdb)).To(Succeed())
		Expect(pdb.Spec.MinAvailable.IntValue()).To(Equal(2))
		cm := &corev1.ConfigMap{}
		Expect(k8sClient.Get(suiteCtx, key("res-config"), cm)).To(Succeed())
		Expect(cm.Data).To(HaveKeyWithValue("initial-cluster-state", "existing"))
		keySecret := &corev1.Secret{}
		Expect(k8sClient.Get(suiteCtx, key("res-signing-key"), keySecret)).To(Succeed())
		block, _ := pem.Decode(keySecret.Data["signing.key"])
		Expect(block).NotTo(BeNil())
		Expect(block.Type).To(Equal("PRIVATE KEY"))
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		Expect(err).NotTo(HaveOccurred())
		Expect(parsed).To(BeAssignableToTypeOf(ed25519.PrivateKey{}))
		for _, o := range []client.Object{sts, peers, leaderSvc, pdb, cm, keySecret} {
			Expect(metav1.GetControllerOf(o)).NotTo(BeNil(), "%T %s has no owner", o, o.GetName())
			Expect(metav1.GetControllerOf(o).Name).To(Equal("res"))
		}

		By("recreating a deleted leader Service and ConfigMap")
		Expect(k8sClient.Delete(suiteCtx, leaderSvc)).To(Succeed())
		Expect(k8sClient.Delete(suiteCtx, cm)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(suiteCtx, key("res-leader"), &corev1.Service{})).To(Succeed())
			got := &corev1.ConfigMap{}
			g.Expect(k8sClient.Get(suiteCtx, key("res-config"), got)).To(Succeed())
			// The bootstrap record survives: status still says the cluster exists.
			g.Expect(got.Data).To(HaveKeyWithValue("initial-cluster-state", "existing"))
		}, timeout, poll).Should(Succeed())

		By("reverting edits to the PDB and the StatefulSet")
		Expect(k8sClient.Get(suiteCtx, key("res"), pdb)).To(Succeed())
		pdb.Spec.MinAvailable = ptr.To(intstr.FromInt32(0))
		Expect(k8sClient.Update(suiteCtx, pdb)).To(Succeed())
		Expect(k8sClient.Get(suiteCtx, key("res"), sts)).To(Succeed())
		sts.Spec.Template.Spec.Containers[0].Image = "evil:latest"
		Expect(k8sClient.Update(suiteCtx, sts)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(suiteCtx, key("res"), pdb)).To(Succeed())
			g.Expect(pdb.Spec.MinAvailable.IntValue()).To(Equal(2))
			g.Expect(k8sClient.Get(suiteCtx, key("res"), sts)).To(Succeed())
			g.Expect(sts.Spec.Template.Spec.Containers[0].Image).To(Equal("ghcr.io/seqops/sequencer-node:latest"))
		}, timeout, poll).Should(Succeed())
	})

	It("bootstraps once, adds members one at a time and reports them", func() {
		ns := newNamespace()
		f := createCluster(minimalCluster(ns, "boot", 3))
		c := waitHealthy(ns, "boot", "boot-0", "boot-1", "boot-2")

		_, cfg, calls := f.snapshot()
		Expect(cfg.Servers).To(HaveLen(3))
		// Pod 0 bootstrapped alone; each other member was added only after the previous one was promoted.
		Expect(slices.DeleteFunc(calls, func(s string) bool { return strings.HasPrefix(s, "stop") })).To(Equal(
			[]string{"bootstrap boot-0", "add boot-1", "promote boot-1", "add boot-2", "promote boot-2"}))
		Expect(c.Status.Leader).To(Equal("boot-0"))
		Expect(c.Status.Ready).To(Equal("3/3"))
		Expect(c.Status.Bootstrapped).To(BeTrue())
		Expect(c.Status.FailureTolerance).To(Equal(int32(1)))
		Expect(c.Status.LeaderSince).NotTo(BeNil())
		for _, t := range []string{seqv1.ConditionAvailable, seqv1.ConditionQuorumHealthy} {
			Expect(meta.IsStatusConditionTrue(c.Status.Conditions, t)).To(BeTrue(), t)
		}
		for _, t := range []string{seqv1.ConditionDegraded, seqv1.ConditionProgressing} {
			Expect(meta.IsStatusConditionFalse(c.Status.Conditions, t)).To(BeTrue(), t)
		}
		Eventually(func() []string {
			return []string{podRole(ns, "boot-0"), podRole(ns, "boot-1"), podRole(ns, "boot-2")}
		}, timeout, poll).Should(Equal([]string{"leader", "follower", "follower"}))
		Eventually(func() []string { return eventReasons(ns, "boot") }, timeout, poll).Should(
			ContainElements("Created", "Bootstrapped", "MemberAdded", "LeaderElected"))
		Expect(testutil.ToFloat64(membershipOperations.WithLabelValues(ns, "boot", string(stepAddMember)))).To(Equal(2.0))

		By("skipping status writes when nothing changed")
		rv := getCluster(ns, "boot").ResourceVersion
		Consistently(func() string { return getCluster(ns, "boot").ResourceVersion }, 3*time.Second, 200*time.Millisecond).Should(Equal(rv))
	})

	It("follows a leader change within a second", func() {
		ns := newNamespace()
		f := createCluster(minimalCluster(ns, "lead", 3))
		waitHealthy(ns, "lead", "lead-0", "lead-1", "lead-2")
		Eventually(func() string { return podRole(ns, "lead-0") }, timeout, poll).Should(Equal("leader"))

		start := time.Now()
		f.setLeader("lead-2")
		Eventually(func(g Gomega) {
			g.Expect(getCluster(ns, "lead").Status.Leader).To(Equal("lead-2"))
			g.Expect(podRole(ns, "lead-2")).To(Equal("leader"))
			g.Expect(podRole(ns, "lead-0")).To(Equal("follower"))
		}, time.Second, 20*time.Millisecond).Should(Succeed())
		GinkgoWriter.Printf("leader change reached status and labels in %v\n", time.Since(start))
		Eventually(func() []string { return eventMessages(ns, "lead", "LeaderChanged") }, timeout, poll).Should(
			ContainElement(ContainSubstring("from lead-0 to lead-2")))
		Eventually(func() float64 { return testutil.ToFloat64(leaderChanges.WithLabelValues(ns, "lead")) }, timeout, poll).Should(BeNumerically(">=", 1))

		By("measuring a failover: the leader's node goes away and another one takes over")
		f.stop("lead-2", false)
		Eventually(func() string { return getCluster(ns, "lead").Status.Leader }, timeout, poll).Should(Equal("lead-0"))
		Eventually(func() float64 { return testutil.ToFloat64(leaderChanges.WithLabelValues(ns, "lead")) }, timeout, poll).Should(BeNumerically(">=", 2))
		m := &dto.Metric{}
		Expect(failoverDuration.WithLabelValues(ns, "lead").(prometheus.Metric).Write(m)).To(Succeed())
		Expect(m.GetHistogram().GetSampleCount()).To(BeNumerically(">=", 1))
	})

	It("scales down with the leader in the way and applies the Delete retention policy", func() {
		ns := newNamespace()
		c := minimalCluster(ns, "down", 3)
		c.Spec.Storage.RetentionPolicy = seqv1.PVCDelete
		f := createCluster(c)
		waitHealthy(ns, "down", "down-0", "down-1", "down-2")
		f.setLeader("down-2")
		Eventually(func() string { return getCluster(ns, "down").Status.Leader }, timeout, poll).Should(Equal("down-2"))

		patchCluster(ns, "down", func(c *seqv1.SequencerCluster) { c.Spec.Replicas = ptr.To[int32](1) })
		waitHealthy(ns, "down", "down-0")
		Expect(f.callsMatching("transfer")).To(Equal([]string{"transfer down-2->down-0"}))
		Expect(f.callsMatching("remove")).To(Equal([]string{"remove down-2", "remove down-1"}))
		_, cfg, calls := f.snapshot()
		Expect(cfg.Servers).To(ConsistOf(HaveField("ID", "down-0")))
		// Leadership left down-2 before down-2 was removed.
		Expect(slices.Index(calls, "transfer down-2->down-0")).To(BeNumerically("<", slices.Index(calls, "remove down-2")))
		sts := &appsv1.StatefulSet{}
		Expect(k8sClient.Get(suiteCtx, client.ObjectKey{Namespace: ns, Name: "down"}, sts)).To(Succeed())
		Expect(*sts.Spec.Replicas).To(Equal(int32(1)))
		Eventually(func() []string {
			var pvcs corev1.PersistentVolumeClaimList
			Expect(k8sClient.List(suiteCtx, &pvcs, client.InNamespace(ns))).To(Succeed())
			var names []string
			for _, p := range pvcs.Items {
				if p.DeletionTimestamp.IsZero() {
					names = append(names, p.Name)
				}
			}
			return names
		}, timeout, poll).Should(ConsistOf("data-down-0"))
		Eventually(func() []string { return eventReasons(ns, "down") }, timeout, poll).Should(
			ContainElements("LeadershipTransferred", "MemberRemoved", "Scaled", "VolumeDeleted"))
	})

	It("repairs an operator crash between member removal and StatefulSet shrink", func() {
		ns := newNamespace()
		f := createCluster(minimalCluster(ns, "crash", 3))
		waitHealthy(ns, "crash", "crash-0", "crash-1", "crash-2")

		By("running an operator that dies right after removing a member")
		stopManager()
		var dead atomic.Bool
		crashed := make(chan struct{})
		startManager(func(name string) error {
			if dead.Load() {
				return errors.New("operator is dead")
			}
			if name == "after-"+string(stepRemoveMember) {
				dead.Store(true)
				close(crashed)
				return errors.New("crash between removal and shrink")
			}
			return nil
		})
		patchCluster(ns, "crash", func(c *seqv1.SequencerCluster) { c.Spec.Replicas = ptr.To[int32](2) })
		Eventually(crashed, timeout).Should(BeClosed())
		stopManager()

		_, cfg, _ := f.snapshot()
		Expect(cfg.Servers).To(HaveLen(2))
		sts := &appsv1.StatefulSet{}
		Expect(k8sClient.Get(suiteCtx, client.ObjectKey{Namespace: ns, Name: "crash"}, sts)).To(Succeed())
		Expect(*sts.Spec.Replicas).To(Equal(int32(3)), "the dead operator must not have shrunk the StatefulSet")

		By("starting a fresh operator, which finishes the scale-down")
		startManager(nil)
		waitHealthy(ns, "crash", "crash-0", "crash-1")
		Expect(k8sClient.Get(suiteCtx, client.ObjectKey{Namespace: ns, Name: "crash"}, sts)).To(Succeed())
		Expect(*sts.Spec.Replicas).To(Equal(int32(2)))
		Expect(f.callsMatching("remove")).To(Equal([]string{"remove crash-2"}), "the removal must not be repeated")
	})

	It("converges when the operator dies at every step of a scale-up, a scale-down and a rollout", func() {
		ns := newNamespace()
		spec := minimalCluster(ns, "chaos", 3)
		spec.Spec.Storage.RetentionPolicy = seqv1.PVCDelete
		f := createCluster(spec)
		waitHealthy(ns, "chaos", "chaos-0", "chaos-1", "chaos-2")

		// Each operator instance dies at the first failpoint it reaches that no earlier instance died at,
		// so together they crash once before and once after every kind of step the scenario takes.
		stopManager()
		var mu sync.Mutex
		crashedAt := map[string]bool{}
		var dead atomic.Bool
		crashes := make(chan string, 1)
		failpoint := func(name string) error {
			if dead.Load() {
				return errors.New("operator is dead")
			}
			mu.Lock()
			defer mu.Unlock()
			if crashedAt[name] {
				return nil
			}
			crashedAt[name] = true
			dead.Store(true)
			crashes <- name
			return fmt.Errorf("crash at %s", name)
		}
		// runUntil restarts a dead operator until done holds.
		runUntil := func(what string, done func() bool) {
			deadline := time.Now().Add(2 * timeout)
			dead.Store(false)
			startManager(failpoint)
			for !done() {
				if time.Now().After(deadline) {
					c := getCluster(ns, "chaos")
					var pvcs corev1.PersistentVolumeClaimList
					_ = k8sClient.List(suiteCtx, &pvcs, client.InNamespace(ns))
					var names []string
					for _, p := range pvcs.Items {
						names = append(names, p.Name)
					}
					_, cfg, calls := f.snapshot()
					Fail(fmt.Sprintf("operators that crash at every step never got to: %s\nphase %s, voters %v, generation %d/%d, conditions %+v\npvcs %v\nraft %+v\ncalls %v",
						what, c.Status.Phase, voters(c.Status), c.Status.ObservedGeneration, c.Generation, c.Status.Conditions, names, cfg.Servers, calls))
				}
				select {
				case name := <-crashes:
					By("restarting the operator after a crash at " + name)
					stopManager()
					dead.Store(false)
					startManager(failpoint)
				case <-time.After(poll):
				}
			}
			stopManager()
		}
		healthyWith := func(want ...string) func() bool {
			return func() bool {
				c := &seqv1.SequencerCluster{}
				if k8sClient.Get(suiteCtx, client.ObjectKey{Namespace: ns, Name: "chaos"}, c) != nil {
					return false
				}
				return c.Status.Phase == seqv1.PhaseHealthy && c.Status.ObservedGeneration == c.Generation &&
					slices.Equal(slices.Sorted(slices.Values(voters(c.Status))), want)
			}
		}

		By("scaling 3 -> 5")
		patchCluster(ns, "chaos", func(c *seqv1.SequencerCluster) { c.Spec.Replicas = ptr.To[int32](5) })
		runUntil("five voters", healthyWith("chaos-0", "chaos-1", "chaos-2", "chaos-3", "chaos-4"))

		By("scaling 5 -> 3 with the leader on a removed member")
		f.setLeader("chaos-4")
		patchCluster(ns, "chaos", func(c *seqv1.SequencerCluster) { c.Spec.Replicas = ptr.To[int32](3) })
		runUntil("three voters and no volumes of removed members", func() bool {
			var pvcs corev1.PersistentVolumeClaimList
			if k8sClient.List(suiteCtx, &pvcs, client.InNamespace(ns)) != nil {
				return false
			}
			live := 0 // envtest has no controller to clear the pvc-protection finalizer of a deleted claim
			for _, p := range pvcs.Items {
				if p.DeletionTimestamp.IsZero() {
					live++
				}
			}
			return healthyWith("chaos-0", "chaos-1", "chaos-2")() && live == 3
		})

		By("rolling out a new image")
		patchCluster(ns, "chaos", func(c *seqv1.SequencerCluster) { c.Spec.Image = "ghcr.io/seqops/sequencer-node:v2" })
		runUntil("every pod on the new image", func() bool {
			var pods corev1.PodList
			if k8sClient.List(suiteCtx, &pods, client.InNamespace(ns)) != nil || len(pods.Items) != 3 {
				return false
			}
			for _, p := range pods.Items {
				if p.Spec.Containers[0].Image != "ghcr.io/seqops/sequencer-node:v2" {
					return false
				}
			}
			return healthyWith("chaos-0", "chaos-1", "chaos-2")()
		})
		startManager(nil)

		for _, kind := range []stepKind{stepAddMember, stepRemoveMember, stepTransferLeadership, stepScaleStatefulSet, stepDeleteVolume, stepReplacePod} {
			Expect(crashedAt).To(HaveKey("before-"+string(kind)), "the scenario never crashed before %s", kind)
			Expect(crashedAt).To(HaveKey("after-"+string(kind)), "the scenario never crashed after %s", kind)
		}
		_, cfg, calls := f.snapshot()
		Expect(cfg.Servers).To(HaveLen(3))
		Expect(slices.DeleteFunc(slices.Clone(calls), func(s string) bool { return !strings.HasPrefix(s, "bootstrap") })).
			To(Equal([]string{"bootstrap chaos-0"}), "no second cluster")
		Expect(f.callsMatching("remove")).To(ConsistOf("remove chaos-3", "remove chaos-4"), "each removal exactly once")
	})

	It("serves switchover requests and refuses bad targets", func() {
		ns := newNamespace()
		createCluster(minimalCluster(ns, "sw", 3))
		waitHealthy(ns, "sw", "sw-0", "sw-1", "sw-2")

		patchCluster(ns, "sw", func(c *seqv1.SequencerCluster) {
			c.Annotations = map[string]string{seqv1.AnnotationTransferLeaderTo: "sw-1"}
		})
		Eventually(func(g Gomega) {
			c := getCluster(ns, "sw")
			g.Expect(c.Status.Leader).To(Equal("sw-1"))
			g.Expect(c.Annotations).NotTo(HaveKey(seqv1.AnnotationTransferLeaderTo))
			g.Expect(podRole(ns, "sw-1")).To(Equal("leader"))
		}, timeout, poll).Should(Succeed())
		Eventually(func() []string { return eventReasons(ns, "sw") }, timeout, poll).Should(ContainElement("SwitchoverDone"))

		patchCluster(ns, "sw", func(c *seqv1.SequencerCluster) {
			c.Annotations = map[string]string{seqv1.AnnotationTransferLeaderTo: "sw-7"}
		})
		Eventually(func(g Gomega) {
			c := getCluster(ns, "sw")
			g.Expect(c.Annotations).NotTo(HaveKey(seqv1.AnnotationTransferLeaderTo))
			p := meta.FindStatusCondition(c.Status.Conditions, seqv1.ConditionProgressing)
			g.Expect(p).NotTo(BeNil())
			g.Expect(p.Reason).To(Equal(seqv1.ReasonSwitchoverRejected))
			g.Expect(p.Message).To(ContainSubstring(`"sw-7"`))
			g.Expect(c.Status.Leader).To(Equal("sw-1"))
		}, timeout, poll).Should(Succeed())
		Eventually(func() []string { return eventMessages(ns, "sw", "SwitchoverRejected") }, timeout, poll).Should(
			ContainElement(ContainSubstring("not one of the 3 desired members")))
	})

	It("rolls out a new template followers first and the leader last", func() {
		ns := newNamespace()
		f := createCluster(minimalCluster(ns, "roll", 3))
		waitHealthy(ns, "roll", "roll-0", "roll-1", "roll-2")
		_, _, before := f.snapshot()

		patchCluster(ns, "roll", func(c *seqv1.SequencerCluster) { c.Spec.Image = "ghcr.io/seqops/sequencer-node:v2" })
		Eventually(func(g Gomega) {
			var pods corev1.PodList
			g.Expect(k8sClient.List(suiteCtx, &pods, client.InNamespace(ns))).To(Succeed())
			g.Expect(pods.Items).To(HaveLen(3))
			for _, p := range pods.Items {
				g.Expect(p.Spec.Containers[0].Image).To(Equal("ghcr.io/seqops/sequencer-node:v2"))
			}
		}, timeout, poll).Should(Succeed())
		c := waitHealthy(ns, "roll", "roll-0", "roll-1", "roll-2")

		_, _, after := f.snapshot()
		steps := slices.DeleteFunc(slices.Clone(after[len(before):]), func(s string) bool { return strings.HasPrefix(s, "promote") })
		// Followers one at a time, highest first; then leadership to an updated member; then the old leader.
		Expect(steps).To(Equal([]string{"stop roll-2", "stop roll-1", "transfer roll-0->roll-1", "stop roll-0"}))
		Expect(c.Status.Leader).To(Equal("roll-1"))
		Eventually(func() []string { return eventReasons(ns, "roll") }, timeout, poll).Should(ContainElement("PodReplaced"))
	})

	It("freezes membership while paused but keeps the status live", func() {
		ns := newNamespace()
		f := createCluster(minimalCluster(ns, "pause", 3))
		waitHealthy(ns, "pause", "pause-0", "pause-1", "pause-2")

		patchCluster(ns, "pause", func(c *seqv1.SequencerCluster) {
			c.Spec.Paused = true
			c.Spec.Replicas = ptr.To[int32](5)
		})
		Eventually(func(g Gomega) {
			p := meta.FindStatusCondition(getCluster(ns, "pause").Status.Conditions, seqv1.ConditionProgressing)
			g.Expect(p).NotTo(BeNil())
			g.Expect(p.Reason).To(Equal(seqv1.ReasonPaused))
		}, timeout, poll).Should(Succeed())
		f.setLeader("pause-1")
		Eventually(func() string { return getCluster(ns, "pause").Status.Leader }, timeout, poll).Should(Equal("pause-1"))
		Consistently(func(g Gomega) {
			sts := &appsv1.StatefulSet{}
			g.Expect(k8sClient.Get(suiteCtx, client.ObjectKey{Namespace: ns, Name: "pause"}, sts)).To(Succeed())
			g.Expect(*sts.Spec.Replicas).To(Equal(int32(3)))
			g.Expect(f.callsMatching("add")).To(HaveLen(2))
		}, 2*time.Second, 100*time.Millisecond).Should(Succeed())

		patchCluster(ns, "pause", func(c *seqv1.SequencerCluster) { c.Spec.Paused = false })
		waitHealthy(ns, "pause", "pause-0", "pause-1", "pause-2", "pause-3", "pause-4")
	})

	It("reports quorum loss and changes nothing until it returns", func() {
		ns := newNamespace()
		f := createCluster(minimalCluster(ns, "quorum", 3))
		waitHealthy(ns, "quorum", "quorum-0", "quorum-1", "quorum-2")
		_, _, before := f.snapshot()

		f.stop("quorum-1", false)
		f.stop("quorum-2", false)
		Eventually(func(g Gomega) {
			c := getCluster(ns, "quorum")
			g.Expect(c.Status.Phase).To(Equal(seqv1.PhaseNoQuorum))
			g.Expect(c.Status.Leader).To(BeEmpty())
			g.Expect(meta.IsStatusConditionFalse(c.Status.Conditions, seqv1.ConditionAvailable)).To(BeTrue())
			g.Expect(meta.IsStatusConditionFalse(c.Status.Conditions, seqv1.ConditionQuorumHealthy)).To(BeTrue())
			g.Expect(meta.IsStatusConditionTrue(c.Status.Conditions, seqv1.ConditionDegraded)).To(BeTrue())
			g.Expect(podRole(ns, "quorum-0")).To(Equal("follower"))
		}, timeout, poll).Should(Succeed())
		Eventually(func() []string { return eventReasons(ns, "quorum") }, timeout, poll).Should(ContainElement("QuorumLost"))
		Consistently(func() int {
			_, _, calls := f.snapshot()
			return len(calls)
		}, 2*time.Second, 100*time.Millisecond).Should(Equal(len(before) + 2))

		By("bringing one node back: a leader again, still degraded")
		f.start("quorum-1", "existing")
		Eventually(func(g Gomega) {
			c := getCluster(ns, "quorum")
			g.Expect(c.Status.Phase).To(Equal(seqv1.PhaseDegraded))
			g.Expect(c.Status.Leader).NotTo(BeEmpty())
			g.Expect(meta.FindStatusCondition(c.Status.Conditions, seqv1.ConditionDegraded).Message).To(ContainSubstring("quorum-2 does not answer"))
		}, timeout, poll).Should(Succeed())
		Eventually(func() []string { return eventReasons(ns, "quorum") }, timeout, poll).Should(ContainElement("QuorumRestored"))
		f.start("quorum-2", "existing")
		waitHealthy(ns, "quorum", "quorum-0", "quorum-1", "quorum-2")
	})

	It("never bootstraps a second cluster from a wiped pod 0", func() {
		ns := newNamespace()
		f := createCluster(minimalCluster(ns, "wipe", 3))
		waitHealthy(ns, "wipe", "wipe-0", "wipe-1", "wipe-2")

		f.stop("wipe-0", true)
		Expect(k8sClient.Delete(suiteCtx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wipe-0"}})).To(Succeed())
		Eventually(func() []string { return f.callsMatching("add wipe-0") }, timeout, poll).Should(HaveLen(1))
		waitHealthy(ns, "wipe", "wipe-0", "wipe-1", "wipe-2")
		Expect(f.callsMatching("bootstrap")).To(Equal([]string{"bootstrap wipe-0"}))
		Expect(f.callsMatching("remove")).To(Equal([]string{"remove wipe-0"}))
	})

	It("warns about an even replica count", func() {
		ns := newNamespace()
		createCluster(minimalCluster(ns, "even", 2))
		waitHealthy(ns, "even", "even-0", "even-1")
		Eventually(func() []string { return eventReasons(ns, "even") }, timeout, poll).Should(ContainElement("EvenReplicas"))
		c := getCluster(ns, "even")
		Expect(meta.IsStatusConditionFalse(c.Status.Conditions, seqv1.ConditionQuorumHealthy)).To(BeTrue(),
			"two voters tolerate no failure")
	})
})
