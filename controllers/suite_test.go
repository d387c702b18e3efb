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
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// The envtest suite runs the real controller against a real API server (built from source into bin/k8s).
// There is no kubelet and no StatefulSet controller: fakeKubelet plays both, creating the StatefulSet's pods
// and volumes and starting a fake node (fakeRaft) for each pod, so status, labels and events are driven by
// node API servers that speak the real contract through the real typed client.

var (
	cfg       *rest.Config
	k8sClient client.Client
	testEnv   *envtest.Environment
	scheme    = runtime.NewScheme()
	suiteCtx  context.Context
	suiteStop context.CancelFunc

	mgrMu     sync.Mutex
	mgrCancel context.CancelFunc
	mgrDone   chan struct{}

	fakesMu sync.Mutex
	fakes   = map[types.NamespacedName]*fakeRaft{}
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	suiteCtx, suiteStop = context.WithCancel(context.Background())
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(seqv1.AddToScheme(scheme)).To(Succeed())

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	startManager(nil)
	go fakeKubelet(suiteCtx)
})

var _ = AfterSuite(func() {
	stopManager()
	suiteStop()
	fakesMu.Lock()
	for _, f := range fakes {
		f.close()
	}
	fakesMu.Unlock()
	Expect(testEnv.Stop()).To(Succeed())
})

// startManager runs the controller in a fresh manager: a restarted operator keeps nothing in memory.
func startManager(fp FailpointFunc) {
	mgrMu.Lock()
	defer mgrMu.Unlock()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:     scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      CacheOptions(nil),
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	r := &SequencerClusterReconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Scheme:     mgr.GetScheme(),
		Recorder:   mgr.GetEventRecorder("sequencer-operator"),
		NodeURL:    fakeNodeURL,
		HTTPClient: &http.Client{Timeout: 2 * time.Second},
		Resync:     2 * time.Second,
		Failpoint:  fp,
	}
	Expect(r.SetupWithManager(mgr)).To(Succeed())
	ctx, cancel := context.WithCancel(suiteCtx)
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	mgrCancel, mgrDone = cancel, done
}

func stopManager() {
	mgrMu.Lock()
	defer mgrMu.Unlock()
	if mgrCancel != nil {
		mgrCancel()
		<-mgrDone
		mgrCancel = nil
	}
}

func fakeNodeURL(c *seqv1.SequencerCluster, pod string) string {
	fakesMu.Lock()
	defer fakesMu.Unlock()
	if f := fakes[types.NamespacedName{Namespace: c.Namespace, Name: c.Name}]; f != nil {
		return f.url(pod)
	}
	return "http://127.0.0.1:1"
}

func fakeFor(ns, name string) *fakeRaft {
	fakesMu.Lock()
	defer fakesMu.Unlock()
	return fakes[types.NamespacedName{Namespace: ns, Name: name}]
}

// fakeKubelet plays the StatefulSet controller and the kubelet for every StatefulSet: it creates the pods
// (from the current template, like OnDelete does for a missing pod) and their volumes, deletes pods above the
// replica count, marks pods ready, and starts or stops each pod's fake node with the ConfigMap's
// initial-cluster-state as the pod would read it at start.
func fakeKubelet(ctx context.Context) {
	defer GinkgoRecover()
	running := map[types.NamespacedName]types.UID{}
	for ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		var stsList appsv1.StatefulSetList
		if err := k8sClient.List(ctx, &stsList); err != nil {
			continue
		}
		seen := map[types.NamespacedName]bool{}
		for i := range stsList.Items {
			kubeletSync(ctx, &stsList.Items[i], running, seen)
		}
		for key := range running {
			if !seen[key] {
				if f := fakeFor(key.Namespace, clusterOfPod(key.Name)); f != nil {
					f.stop(key.Name, false)
				}
				delete(running, key)
			}
		}
	}
}

func clusterOfPod(pod string) string {
	for i := len(pod) - 1; i >= 0; i-- {
		if pod[i] == '-' {
			return pod[:i]
		}
	}
	return pod
}

func kubeletSync(ctx context.Context, sts *appsv1.StatefulSet, running map[types.NamespacedName]types.UID, seen map[types.NamespacedName]bool) {
	f := fakeFor(sts.Namespace, sts.Name)
	if f == nil || !sts.DeletionTimestamp.IsZero() {
		return
	}
	replicas := int(ptr.Deref(sts.Spec.Replicas, 1))
	var pods corev1.PodList
	if err := k8sClient.List(ctx, &pods, client.InNamespace(sts.Namespace), client.MatchingLabels(sts.Spec.Selector.MatchLabels)); err != nil {
		return
	}
	existing := map[string]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		ord := parseOrdinal(sts.Name, p.Name)
		if ord >= replicas {
			_ = k8sClient.Delete(ctx, p)
			continue
		}
		existing[p.Name] = p
	}
	for ord := range replicas {
		name := fmt.Sprintf("%s-%d", sts.Name, ord)
		key := types.NamespacedName{Namespace: sts.Namespace, Name: name}
		pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-" + name, Namespace: sts.Namespace,
			Labels: sts.Spec.VolumeClaimTemplates[0].Labels}, Spec: sts.Spec.VolumeClaimTemplates[0].Spec}
		if err := k8sClient.Create(ctx, pvc); err != nil && !apierrors.IsAlreadyExists(err) {
			GinkgoWriter.Printf("fake kubelet: cannot create %s: %v\n", pvc.Name, err)
			continue
		}
		p := existing[name]
		if p == nil {
			p = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: sts.Namespace,
				Labels: sts.Spec.Template.Labels, Annotations: sts.Spec.Template.Annotations,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(sts, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))},
			}, Spec: sts.Spec.Template.Spec}
			p.Spec.Hostname, p.Spec.Subdomain = name, sts.Spec.ServiceName
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name}}})
			if err := k8sClient.Create(ctx, p); err != nil {
				GinkgoWriter.Printf("fake kubelet: cannot create pod %s: %v\n", name, err)
				continue
			}
		}
		if uid, ok := running[key]; ok && uid != p.UID {
			f.stop(name, false)
			delete(running, key)
		}
		if _, ok := running[key]; !ok {
			var cm corev1.ConfigMap
			state := "new"
			if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: sts.Namespace, Name: sts.Name + "-config"}, &cm); err == nil {
				state = cm.Data["initial-cluster-state"]
			}
			f.start(name, state)
			running[key] = p.UID
		}
		seen[key] = true
		if !podReady(p) {
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
			_ = k8sClient.Status().Update(ctx, p)
		}
	}
}
