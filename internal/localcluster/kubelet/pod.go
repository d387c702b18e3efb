package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/internal/localcluster/podnet"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// podRuntime runs one pod: its network, volumes and the supervisors of its containers. Its status is
// derived from the containers' state under mu and pushed to the pod controller on every change.
type podRuntime struct {
	p   *Provider
	key string
	dir string // <kubelet dir>/pods/<ns>_<name>_<uid>
	log klog.Logger

	ctx    context.Context // cancelled when the pod is stopped
	cancel context.CancelFunc
	done   chan struct{}

	notifyMu sync.Mutex // serialises notify

	mu        sync.Mutex
	pod       *corev1.Pod
	net       podnet.Pod
	netUp     bool
	vols      *volumeSet
	startTime metav1.Time
	// reason/message explain a pod that cannot start (unsupported feature, missing image mapping).
	reason, message string
	initDone        bool
	stopping        bool
	finished        bool // all containers ended for good (or the pod was deleted)
	initContainers  []*containerRuntime
	containers      []*containerRuntime
}

func newPodRuntime(p *Provider, pod *corev1.Pod) *podRuntime {
	ctx, cancel := context.WithCancel(p.ctx)
	pr := &podRuntime{
		p:         p,
		key:       podKey(pod.Namespace, pod.Name),
		dir:       filepath.Join(p.cfg.Dir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID)),
		log:       p.log.WithValues("pod", klog.KObj(pod)),
		ctx:       ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
		pod:       pod.DeepCopy(),
		startTime: metav1.Now(),
	}
	for _, c := range pod.Spec.InitContainers {
		pr.initContainers = append(pr.initContainers, newContainerRuntime(pr, c, true))
	}
	for _, c := range pod.Spec.Containers {
		pr.containers = append(pr.containers, newContainerRuntime(pr, c, false))
	}
	return pr
}

func podKey(namespace, name string) string { return namespace + "/" + name }

// run is the pod's whole life: prepare (retrying while the pod's inputs are missing), init
// containers, then the main containers until they end for good or the pod is stopped.
func (pr *podRuntime) run() {
	defer close(pr.done)
	defer pr.teardown()
	if err := pr.prepareWithRetry(); err != nil {
		return // stopped while preparing
	}
	go pr.refreshVolumes()
	for _, c := range pr.initContainers {
		if !c.runToCompletion() {
			pr.mu.Lock()
			pr.finished = true
			pr.mu.Unlock()
			pr.notify()
			return
		}
	}
	pr.mu.Lock()
	pr.initDone = true
	pr.mu.Unlock()
	pr.notify()
	var wg sync.WaitGroup
	for _, c := range pr.containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.supervise()
		}()
	}
	wg.Wait()
	pr.mu.Lock()
	pr.finished = true
	pr.mu.Unlock()
	pr.notify()
}

// prepareWithRetry retries preparation every two seconds: a missing ConfigMap may be created later, a
// claim bound later, a binary built later. Problems are shown in the pod's status meanwhile.
func (pr *podRuntime) prepareWithRetry() error {
	for {
		err := pr.prepare()
		if err == nil {
			pr.mu.Lock()
			pr.reason, pr.message = "", ""
			pr.mu.Unlock()
			return nil
		}
		reason := "KubeletError"
		var ce *configError
		if errors.As(err, &ce) {
			reason = ce.reason
		} else {
			pr.log.Error(err, "Cannot prepare pod")
		}
		pr.mu.Lock()
		changed := pr.reason != reason || pr.message != err.Error()
		pr.reason, pr.message = reason, err.Error()
		pr.mu.Unlock()
		if changed {
			pr.log.Info("Pod cannot start yet", "reason", reason, "message", err.Error())
			pr.p.recordEvent(pr.pod, corev1.EventTypeWarning, reason, err.Error())
		}
		pr.notify()
		select {
		case <-pr.ctx.Done():
			return pr.ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func (pr *podRuntime) prepare() error {
	pod := pr.pod
	if err := checkSupported(pod); err != nil {
		return err
	}
	if pod.Spec.HostNetwork {
		return configErrorf("UnsupportedPodFeature", "hostNetwork pods are not supported by the local process kubelet")
	}
	for _, c := range append(append([]*containerRuntime{}, pr.initContainers...), pr.containers...) {
		bin, ok := BinaryForImage(pr.p.cfg.Images, c.spec.Image)
		if !ok {
			return configErrorf("ErrImagePull", "image %q has no binary mapping in the local process kubelet (mapped patterns: %s)", c.spec.Image, patterns(pr.p.cfg.Images))
		}
		if _, err := os.Stat(bin); err != nil {
			return configErrorf("ErrImagePull", "image %q maps to %s, which does not exist (run make build)", c.spec.Image, bin)
		}
		pr.mu.Lock()
		c.binary = bin
		pr.mu.Unlock()
	}
	if err := os.MkdirAll(filepath.Join(pr.dir, "logs"), 0o755); err != nil {
		return fmt.Errorf("cannot create pod dir: %w", err)
	}
	if !pr.netUp {
		ip, err := pr.p.ips.allocate(pr.key)
		if err != nil {
			return err
		}
		hash := shortHash(string(pod.UID))
		n := podnet.Pod{Netns: pr.p.cfg.NetnsPrefix + hash, HostVeth: "lcv" + hash, IP: ip}
		if err := pr.p.subnet.SetupPod(pr.ctx, n); err != nil {
			pr.p.ips.release(pr.key)
			return fmt.Errorf("cannot set up network for pod %s: %w", pr.key, err)
		}
		pr.mu.Lock()
		pr.net, pr.netUp = n, true
		pr.mu.Unlock()
		pr.p.hosts.add(pr.key, pod, ip.String(), filepath.Join(pr.dir, "hosts"))
		pr.writeRecord()
		pr.notify()
	}
	if pr.vols == nil {
		pr.vols = newVolumeSet(pod, pr.dir, pr.net.IP.String(), pr.p.caCert, pr.p.client, pr.p)
	}
	if err := pr.vols.prepare(pr.ctx); err != nil {
		return err
	}
	for _, c := range append(append([]*containerRuntime{}, pr.initContainers...), pr.containers...) {
		if _, _, err := buildEnv(pod, &c.spec, pr.net.IP.String(), pr.baseEnv(), pr.p); err != nil {
			return err
		}
		for _, m := range c.spec.VolumeMounts {
			if _, ok := pr.vols.paths[m.Name]; !ok {
				return configErrorf("CreateContainerConfigError", "container %q mounts unknown volume %q", c.spec.Name, m.Name)
			}
		}
	}
	return nil
}

func (pr *podRuntime) refreshVolumes() {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-pr.ctx.Done():
			return
		case <-t.C:
			pr.vols.refresh(pr.ctx)
		}
	}
}

// baseEnv is what every container gets before its own env: the in-cluster API location (through the
// kubelet's forwarder on the bridge gateway, since pods cannot reach the host's loopback).
func (pr *podRuntime) baseEnv() []string {
	gw, port := pr.p.cfg.Gateway, fmt.Sprint(pr.p.cfg.APIServerPort)
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"HOSTNAME=" + podHostname(pr.pod),
		"KUBERNETES_SERVICE_HOST=" + gw,
		"KUBERNETES_SERVICE_PORT=" + port,
		"KUBERNETES_SERVICE_PORT_HTTPS=" + port,
		"KUBERNETES_PORT=tcp://" + gw + ":" + port,
		"KUBERNETES_PORT_443_TCP=tcp://" + gw + ":" + port,
		"KUBERNETES_PORT_443_TCP_PROTO=tcp",
		"KUBERNETES_PORT_443_TCP_PORT=" + port,
		"KUBERNETES_PORT_443_TCP_ADDR=" + gw,
	}
}

func podHostname(pod *corev1.Pod) string {
	if pod.Spec.Hostname != "" {
		return pod.Spec.Hostname
	}
	if len(pod.Name) > 63 {
		return pod.Name[:63]
	}
	return pod.Name
}

// stop terminates the pod: SIGTERM to every container, SIGKILL after grace.
func (pr *podRuntime) stop(grace time.Duration) {
	pr.mu.Lock()
	if pr.stopping {
		pr.mu.Unlock()
		return
	}
	pr.stopping = true
	pr.mu.Unlock()
	pr.log.Info("Stopping pod", "grace", grace.String())
	pr.cancel()
	var wg sync.WaitGroup
	for _, c := range append(append([]*containerRuntime{}, pr.initContainers...), pr.containers...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.terminate(grace)
		}()
	}
	wg.Wait()
}

func (pr *podRuntime) isStopping() bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.stopping
}

func (pr *podRuntime) teardown() {
	pr.p.hosts.remove(pr.key)
	pr.mu.Lock()
	n, up := pr.net, pr.netUp
	pr.netUp = false
	pr.mu.Unlock()
	if up {
		if err := pr.p.subnet.TeardownPod(context.WithoutCancel(pr.ctx), n); err != nil {
			pr.log.Error(err, "Cannot tear down pod network")
		}
		pr.p.ips.release(pr.key)
	}
	removePodRecord(pr.p.cfg.Dir, pr.pod.Namespace, pr.pod.Name, string(pr.pod.UID))
	// Generated volumes (tokens, secrets) do not outlive the pod; logs do, until the data dir goes.
	_ = os.RemoveAll(filepath.Join(pr.dir, "volumes"))
}

func (pr *podRuntime) writeRecord() {
	pr.mu.Lock()
	rec := &PodRecord{
		Namespace: pr.pod.Namespace, Name: pr.pod.Name, UID: string(pr.pod.UID),
		IP: pr.net.IP.String(), Netns: pr.net.Netns, HostVeth: pr.net.HostVeth,
		Containers: map[string]int{}, LogDir: filepath.Join(pr.dir, "logs"), HostsFile: filepath.Join(pr.dir, "hosts"),
	}
	for _, c := range append(append([]*containerRuntime{}, pr.initContainers...), pr.containers...) {
		rec.Containers[c.spec.Name] = c.pid
	}
	pr.mu.Unlock()
	if err := writePodRecord(pr.p.cfg.Dir, rec); err != nil {
		pr.log.Error(err, "Cannot write pod record")
	}
}

// notify pushes the current status to the pod controller. Snapshot and delivery happen under one lock
// so that an older snapshot is never delivered after a newer one: the pod controller keeps the last
// status it was given, and nothing might change again to correct it.
func (pr *podRuntime) notify() {
	pr.notifyMu.Lock()
	defer pr.notifyMu.Unlock()
	pr.p.notify(pr.snapshot())
}

// snapshot is the pod with its current status; safe to hand out.
func (pr *podRuntime) snapshot() *corev1.Pod {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pod := pr.pod.DeepCopy()
	st := &pod.Status
	st.HostIP = "127.0.0.1"
	st.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	st.StartTime = &pr.startTime
	if pr.netUp {
		st.PodIP = pr.net.IP.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	st.InitContainerStatuses = nil
	st.ContainerStatuses = nil
	for _, c := range pr.initContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, c.status(pr.reason, pr.message))
	}
	allReady, anyRunning, allSucceeded := true, false, true
	for _, c := range pr.containers {
		cs := c.status(pr.reason, pr.message)
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if !cs.Ready {
			allReady = false
		}
		if cs.State.Running != nil {
			anyRunning = true
		}
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			allSucceeded = false
		}
	}
	switch {
	case pr.finished && allSucceeded:
		st.Phase = corev1.PodSucceeded
	case pr.finished:
		st.Phase = corev1.PodFailed
	case anyRunning || pr.initDone && pr.anyStarted():
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	st.Reason, st.Message = "", ""
	if pr.reason != "" {
		st.Reason, st.Message = pr.reason, pr.message
	}
	now := metav1.Now()
	ready := allReady && anyRunning && !pr.stopping
	st.Conditions = setCondition(st.Conditions, corev1.PodReadyToStartContainers, pr.netUp, now, "", "")
	st.Conditions = setCondition(st.Conditions, corev1.PodInitialized, pr.initDone, now, "", "")
	st.Conditions = setCondition(st.Conditions, corev1.ContainersReady, ready, now, "ContainersNotReady", "")
	st.Conditions = setCondition(st.Conditions, corev1.PodReady, ready, now, "ContainersNotReady", "")
	st.Conditions = setCondition(st.Conditions, corev1.PodScheduled, true, now, "", "")
	return pod
}

func (pr *podRuntime) anyStarted() bool {
	for _, c := range pr.containers {
		if c.everStarted {
			return true
		}
	}
	return false
}

func setCondition(conds []corev1.PodCondition, t corev1.PodConditionType, ok bool, now metav1.Time, falseReason, msg string) []corev1.PodCondition {
	status := corev1.ConditionFalse
	reason := falseReason
	if ok {
		status, reason = corev1.ConditionTrue, ""
	}
	for i := range conds {
		if conds[i].Type != t {
			continue
		}
		if conds[i].Status != status {
			conds[i].LastTransitionTime = now
		}
		conds[i].Status, conds[i].Reason, conds[i].Message = status, reason, msg
		return conds
	}
	return append(conds, corev1.PodCondition{Type: t, Status: status, Reason: reason, Message: msg, LastTransitionTime: now})
}

// signalGroup signals the process group of pid (the container and anything it forked).
func signalGroup(pid int, sig syscall.Signal) {
	if pid <= 0 {
		return
	}
	_ = syscall.Kill(-pid, sig)
	_ = syscall.Kill(pid, sig)
}
