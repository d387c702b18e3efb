//go:build e2e

package e2e

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// (j) delete the SequencerCluster → owned objects garbage-collected, PVCs per policy.
var _ = Describe("Deleting a SequencerCluster", Label(LabelDeletion), func() {
	It("garbage-collects the owned objects and keeps or deletes the volumes as the retention policy says", func(ctx SpecContext) {
		ns := createNamespace(ctx, "deletion")
		keep := newSequencerCluster(ns, "keep", 1)
		drop := newSequencerCluster(ns, "drop", 1)
		drop.Spec.Storage.RetentionPolicy = seqv1.PVCDelete
		Expect(k8s.Create(ctx, keep)).To(Succeed())
		createHealthyCluster(ctx, drop)
		waitHealthy(ctx, keep, 1, 2*time.Minute)

		for _, sc := range []*seqv1.SequencerCluster{keep, drop} {
			By("checking what " + sc.Name + " owns before the deletion")
			for _, obj := range ownedObjects(sc) {
				Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed(), "%T %s should exist", obj, obj.GetName())
				Expect(obj.GetOwnerReferences()).To(ContainElement(HaveField("Name", sc.Name)), "%T %s owner references", obj, obj.GetName())
			}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pvcName(sc.Name + "-0")}, &corev1.PersistentVolumeClaim{})).To(Succeed())
		}

		By("kubectl delete seqc keep drop")
		_, stderr, err := kubectl(ctx, "delete", "seqc", "-n", ns, "keep", "drop")
		Expect(err).NotTo(HaveOccurred(), stderr)

		for _, sc := range []*seqv1.SequencerCluster{keep, drop} {
			for _, obj := range append(ownedObjects(sc), &corev1.Pod{}) {
				if _, ok := obj.(*corev1.Pod); ok {
					obj.SetNamespace(ns)
					obj.SetName(sc.Name + "-0")
				}
				Eventually(func() bool { return isGone(ctx, obj) }).WithContext(ctx).WithTimeout(90*time.Second).WithPolling(time.Second).
					Should(BeTrue(), "%T %s of %s should be garbage-collected", obj, obj.GetName(), sc.Name)
			}
		}
		By("the Retain cluster's volume kept, the Delete cluster's volume deleted")
		Consistently(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pvcName("keep-0")}, &corev1.PersistentVolumeClaim{})
		}).WithContext(ctx).WithTimeout(3*time.Second).Should(Succeed(), "PVC data-keep-0 should stay (retentionPolicy Retain)")
		Eventually(func() bool {
			return isGone(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: objMeta(ns, pvcName("drop-0"))})
		}).WithContext(ctx).WithTimeout(90*time.Second).WithPolling(time.Second).Should(BeTrue(), "PVC data-drop-0 should be deleted (retentionPolicy Delete)")
	})
})

// ownedObjects are the objects a cluster with a generated signing key owns, by name.
func ownedObjects(sc *seqv1.SequencerCluster) []client.Object {
	return []client.Object{
		&appsv1.StatefulSet{ObjectMeta: objMeta(sc.Namespace, sc.Name)},
		&corev1.Service{ObjectMeta: objMeta(sc.Namespace, sc.Name)},
		&corev1.Service{ObjectMeta: objMeta(sc.Namespace, sc.Name+"-peers")},
		&corev1.Service{ObjectMeta: objMeta(sc.Namespace, sc.Name+"-leader")},
		&policyv1.PodDisruptionBudget{ObjectMeta: objMeta(sc.Namespace, sc.Name)},
		&corev1.ConfigMap{ObjectMeta: objMeta(sc.Namespace, sc.Name+"-config")},
		&corev1.Secret{ObjectMeta: objMeta(sc.Namespace, sc.Name+"-api-token")},
		&corev1.Secret{ObjectMeta: objMeta(sc.Namespace, sc.Name+"-signing-key")},
	}
}

// isGone reports whether obj no longer exists.
func isGone(ctx context.Context, obj client.Object) bool {
	return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj))
}
