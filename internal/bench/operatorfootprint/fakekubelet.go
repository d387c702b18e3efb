package operatorfootprint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// The fake kubelet owns one Node object. Pods the scheduler binds to it get no process: the kubelet starts the
// pod's fake node (a nodeapi server over the cluster's fake Raft group, listening on the pod's loopback
// address), reports the pod Running with that address as its IP, and keeps the Ready condition equal to the
// node's own readiness, as the real pod's readiness probe on /readyz would.

const (
	fakeNodeLabel   = "seqops.io/fake-node"
	nodeAPIPort     = 8080
	leaseDuration   = 40 * time.Second
	heartbeatPeriod = 10 * time.Second
	readinessPeriod = time.Second
)

type fakeKubelet struct {
	cs       kubernetes.Interface
	nodeName string
	lay      layout
	progress io.Writer

	// served counts node API requests; watches counts open /raft/watch streams.
	served  atomic.Int64
	watches atomic.Int64
	forward *http.Client

	mu     sync.Mutex
	groups map[string]*group
	pods   map[string]*fakePod
	queue  chan string
}

// fakePod is a pod whose fake node was started.
type fakePod struct {
	uid    types.UID
	node   *node
	srv    *http.Server
	api    *nodeapi.Server
	ready  bool
	failed bool
}

func newFakeKubelet(cs kubernetes.Interface, nodeName string, lay layout, progress io.Writer) *fakeKubelet {
	k := &fakeKubelet{cs: cs, nodeName: nodeName, lay: lay, progress: progress,
		groups: map[string]*group{}, pods: map[string]*fakePod{}, queue: make(chan string, 4096)}
	// A follower forwards leader-only calls to the leader by its cluster DNS name, which only the fake knows.
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	k.forward = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ip, ok := lay.ipOfHost(host); ok {
				addr = net.JoinHostPort(ip, port)
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}}
	for i := range lay.clusters {
		name := lay.clusterName(i)
		k.groups[name] = newGroup(lay.peerDomain(name), time.Now)
	}
	return k
}

// register creates the Node and its Lease and waits until the scheduler may place pods on it.
func (k *fakeKubelet) register(ctx context.Context) error {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: k.nodeName,
		Labels: map[string]string{corev1.LabelHostname: k.nodeName, fakeNodeLabel: "true", corev1.LabelOSStable: "linux"}}}
	if _, err := k.cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("cannot create node %s: %w", k.nodeName, err)
	}
	if err := k.reportReady(ctx); err != nil {
		return err
	}
	if err := k.renewLease(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := k.cs.CoreV1().Nodes().Get(ctx, k.nodeName, metav1.GetOptions{})
		if err == nil && schedulable(got) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s still tainted after 2m: %v", k.nodeName, got.Spec.Taints)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// reportReady writes the node's status with a fresh Ready heartbeat; kube-controller-manager also writes the
// node (taints), hence the retry on conflict.
func (k *fakeKubelet) reportReady(ctx context.Context) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := k.cs.CoreV1().Nodes().Get(ctx, k.nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Status = nodeStatus(k.nodeName, time.Now())
		_, err = k.cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("cannot report node %s ready: %w", k.nodeName, err)
	}
	return nil
}

func schedulable(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return false
		}
	}
	return !n.Spec.Unschedulable
}

func nodeStatus(name string, now time.Time) corev1.NodeStatus {
	capacity := corev1.ResourceList{
		corev1.ResourcePods:   resource.MustParse("1000"),
		corev1.ResourceCPU:    resource.MustParse("1000"),
		corev1.ResourceMemory: resource.MustParse("4Ti"),
	}
	return corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "FakeNodeReady",
			Message: "fake node of the operator footprint benchmark", LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: name}},
		NodeInfo:  corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "fake"},
	}
}

// renewLease creates or renews the node's Lease, the heartbeat kube-controller-manager's node lifecycle reads.
func (k *fakeKubelet) renewLease(ctx context.Context) error {
	leases := k.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, k.nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: k.nodeName, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(k.nodeName),
				LeaseDurationSeconds: ptr.To(int32(leaseDuration / time.Second)), RenewTime: &now},
		}, metav1.CreateOptions{})
	} else if err == nil {
		l.Spec.RenewTime = &now
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("cannot renew lease of node %s: %w", k.nodeName, err)
	}
	return nil
}

// heartbeat renews the Lease and the Ready condition until ctx ends.
func (k *fakeKubelet) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := k.renewLease(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintf(k.progress, "fake kubelet: %v\n", err)
		}
		if err := k.reportReady(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintf(k.progress, "fake kubelet: %v\n", err)
		}
	}
}

// run serves the pods bound to the node until ctx ends, then stops every fake node.
func (k *fakeKubelet) run(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(k.cs, 0, informers.WithNamespace(k.lay.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.nodeName).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			k.queue <- key
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue})
	factory.Start(ctx.Done())
	go k.heartbeat(ctx)
	go k.probe(ctx, inf.GetStore())
	for {
		select {
		case <-ctx.Done():
			factory.Shutdown()
			k.stopAll()
			return
		case key := <-k.queue:
			obj, exists, err := inf.GetStore().GetByKey(key)
			if err != nil {
				continue
			}
			if !exists {
				k.podGone(ctx, key[strings.IndexByte(key, '/')+1:], nil)
				continue
			}
			if err := k.sync(ctx, obj.(*corev1.Pod)); err != nil && ctx.Err() == nil {
				fmt.Fprintf(k.progress, "fake kubelet: pod %s: %v\n", key, err)
			}
		}
	}
}

// sync starts the fake node of a new pod, or stops it when the pod is being deleted.
func (k *fakeKubelet) sync(ctx context.Context, pod *corev1.Pod) error {
	if pod.DeletionTimestamp != nil {
		k.podGone(ctx, pod.Name, pod)
		return nil
	}
	k.mu.Lock()
	fp := k.pods[pod.Name]
	k.mu.Unlock()
	if fp != nil && fp.uid == pod.UID {
		return nil
	}
	if fp != nil {
		// A new pod of the same name: the old one's node stopped when it was deleted.
		fp.node.stop()
	}
	cluster := pod.Labels[seqv1.LabelCluster]
	g := k.groups[cluster]
	ip, ok := k.lay.ipOfPod(pod.Name)
	if g == nil || !ok || len(pod.Spec.Containers) == 0 {
		return fmt.Errorf("not a pod of the benchmark's clusters")
	}
	c := pod.Spec.Containers[0]
	initialState, token, err := k.containerInputs(ctx, pod, c)
	if err != nil {
		return err
	}
	n := g.node(pod.Name)
	np := &fakePod{uid: pod.UID, node: n}
	if fp != nil {
		np.srv, np.api = fp.srv, fp.api
	}
	if np.srv == nil {
		if np.srv, np.api, err = k.serve(n, ip, token); err != nil {
			return err
		}
	}
	n.start(flagValue(c.Args, "--bootstrap-id"), initialState)
	np.ready = n.Ready() == nil
	k.mu.Lock()
	k.pods[pod.Name] = np
	k.mu.Unlock()
	return k.patchStatus(ctx, pod, ip, np.ready)
}

// containerInputs resolves what the kubelet would hand the container: SEQ_INITIAL_CLUSTER_STATE from the
// ConfigMap and the API token from the mounted Secret.
func (k *fakeKubelet) containerInputs(ctx context.Context, pod *corev1.Pod, c corev1.Container) (initialState, token string, err error) {
	for _, e := range c.Env {
		if e.Name != "SEQ_INITIAL_CLUSTER_STATE" || e.ValueFrom == nil || e.ValueFrom.ConfigMapKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.ConfigMapKeyRef
		cm, err := k.cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return "", "", fmt.Errorf("cannot read ConfigMap %s: %w", ref.Name, err)
		}
		initialState = cm.Data[ref.Key]
	}
	for _, v := range pod.Spec.Volumes {
		if v.Secret == nil || !strings.HasSuffix(v.Secret.SecretName, "-api-token") {
			continue
		}
		sec, err := k.cs.CoreV1().Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
		if err != nil {
			return "", "", fmt.Errorf("cannot read Secret %s: %w", v.Secret.SecretName, err)
		}
		token = strings.TrimSpace(string(sec.Data["token"]))
	}
	if token == "" {
		return "", "", errors.New("the pod mounts no API token")
	}
	return initialState, token, nil
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// serve starts the node API of one fake node on its pod's loopback address.
func (k *fakeKubelet) serve(n *node, ip, token string) (*http.Server, *nodeapi.Server, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(nodeAPIPort)))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot listen for the fake node API: %w", err)
	}
	api := nodeapi.NewServer(n, nodeapi.ServerConfig{Token: token, ForwardClient: k.forward})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.served.Add(1)
		if r.URL.Path == "/raft/watch" {
			k.watches.Add(1)
			defer k.watches.Add(-1)
		}
		api.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, api, nil
}

// podGone stops the node of a deleted pod and, for a pod still terminating, confirms its deletion as a
// kubelet does once the container exited.
func (k *fakeKubelet) podGone(ctx context.Context, name string, pod *corev1.Pod) {
	k.mu.Lock()
	fp := k.pods[name]
	if fp != nil && (pod == nil || fp.uid == pod.UID) {
		fp.node.stop()
		fp.uid = ""
	}
	k.mu.Unlock()
	if pod != nil {
		err := k.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To(int64(0)), Preconditions: &metav1.Preconditions{UID: &pod.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
			fmt.Fprintf(k.progress, "fake kubelet: cannot confirm deletion of pod %s: %v\n", pod.Name, err)
		}
	}
}

// probe keeps each pod's Ready condition equal to its node's readiness.
func (k *fakeKubelet) probe(ctx context.Context, store cache.Store) {
	t := time.NewTicker(readinessPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k.mu.Lock()
		var changed []string
		for name, fp := range k.pods {
			if fp.uid == "" {
				continue
			}
			if ready := fp.node.Ready() == nil; ready != fp.ready || fp.failed {
				changed = append(changed, name)
			}
		}
		k.mu.Unlock()
		for _, name := range changed {
			obj, ok, err := store.GetByKey(k.lay.namespace + "/" + name)
			if err != nil || !ok {
				continue
			}
			pod := obj.(*corev1.Pod)
			k.mu.Lock()
			fp := k.pods[name]
			k.mu.Unlock()
			if fp == nil || fp.uid != pod.UID {
				continue
			}
			ready := fp.node.Ready() == nil
			ip, _ := k.lay.ipOfPod(name)
			err = k.patchStatus(ctx, pod, ip, ready)
			k.mu.Lock()
			fp.ready, fp.failed = ready, err != nil
			k.mu.Unlock()
		}
	}
}

// patchStatus reports the pod running on ip, ready or not.
func (k *fakeKubelet) patchStatus(ctx context.Context, pod *corev1.Pod, ip string, ready bool) error {
	started := metav1.NewTime(pod.CreationTimestamp.Time)
	if pod.Status.StartTime != nil {
		started = *pod.Status.StartTime
	}
	readyStatus := corev1.ConditionFalse
	if ready {
		readyStatus = corev1.ConditionTrue
	}
	now := metav1.Now()
	var statuses []corev1.ContainerStatus
	for _, c := range pod.Spec.Containers {
		statuses = append(statuses, corev1.ContainerStatus{Name: c.Name, Ready: ready, Started: ptr.To(true), Image: c.Image,
			ImageID: "fake://" + c.Image, ContainerID: "fake://" + string(pod.UID) + "/" + c.Name,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}})
	}
	status := corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    "127.0.0.1",
		HostIPs:   []corev1.HostIP{{IP: "127.0.0.1"}},
		PodIP:     ip,
		PodIPs:    []corev1.PodIP{{IP: ip}},
		StartTime: &started,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.ContainersReady, Status: readyStatus, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: readyStatus, LastTransitionTime: now},
		},
		ContainerStatuses: statuses,
	}
	body, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return fmt.Errorf("cannot encode pod status: %w", err)
	}
	if _, err := k.cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, body, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("cannot patch pod status: %w", err)
	}
	return nil
}

// stopAll ends every watch stream and closes every fake node API.
func (k *fakeKubelet) stopAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, fp := range k.pods {
		fp.api.Close()
		_ = fp.srv.Close()
	}
	k.pods = map[string]*fakePod{}
}
