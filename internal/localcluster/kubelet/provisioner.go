package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

const (
	// StorageClassName is the default StorageClass of the local cluster.
	StorageClassName = "standard"
	// ProvisionerName provisions directories under the data dir as hostPath volumes.
	ProvisionerName = "localcluster.seqops.io/hostpath"
)

// provisioner is a minimal dynamic provisioner: for every pending claim of the default class it creates
// a hostPath PV (a directory under the data dir) pre-bound to the claim, and it deletes the directory
// and the PV when a claim with reclaim policy Delete is released. The data outlives pods, so a pod
// recreated by its StatefulSet finds it again.
type provisioner struct {
	client kubernetes.Interface
	dir    string
	log    klog.Logger
}

func (p *provisioner) run(ctx context.Context) {
	if err := p.ensureStorageClass(ctx); err != nil {
		p.log.Error(err, "Cannot create the default StorageClass")
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		p.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *provisioner) ensureStorageClass(ctx context.Context) error {
	mode := storagev1.VolumeBindingImmediate
	reclaim := corev1.PersistentVolumeReclaimDelete
	_, err := p.client.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        StorageClassName,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       ProvisionerName,
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &mode,
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (p *provisioner) sync(ctx context.Context) {
	claims, err := p.client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range claims.Items {
		pvc := &claims.Items[i]
		class := ""
		if pvc.Spec.StorageClassName != nil {
			class = *pvc.Spec.StorageClassName
		}
		if pvc.Status.Phase != corev1.ClaimPending || pvc.Spec.VolumeName != "" || class != StorageClassName || pvc.DeletionTimestamp != nil {
			continue
		}
		p.provision(ctx, pvc)
	}
	volumes, err := p.client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range volumes.Items {
		pv := &volumes.Items[i]
		if pv.Annotations["pv.kubernetes.io/provisioned-by"] != ProvisionerName || pv.Status.Phase != corev1.VolumeReleased ||
			pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Spec.HostPath == nil {
			continue
		}
		p.log.Info("Deleting released volume", "pv", pv.Name, "path", pv.Spec.HostPath.Path)
		if err := os.RemoveAll(pv.Spec.HostPath.Path); err != nil {
			p.log.Error(err, "Cannot delete volume data", "pv", pv.Name)
			continue
		}
		if err := p.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			p.log.Error(err, "Cannot delete released volume", "pv", pv.Name)
		}
	}
}

func (p *provisioner) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim) {
	name := "pvc-" + string(pvc.UID)
	path := filepath.Join(p.dir, name)
	if err := os.MkdirAll(path, 0o777); err != nil {
		p.log.Error(err, "Cannot create volume dir", "pvc", klog.KObj(pvc))
		return
	}
	dirType := corev1.HostPathDirectoryOrCreate
	capacity := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": ProvisionerName},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: capacity},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              StorageClassName,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &dirType}},
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion,
			},
		},
	}
	if len(pv.Spec.AccessModes) == 0 {
		pv.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	if _, err := p.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			p.log.Error(err, "Cannot create volume", "pvc", klog.KObj(pvc))
		}
		return
	}
	p.log.Info("Provisioned volume", "pvc", klog.KObj(pvc), "pv", name, "path", path)
}
