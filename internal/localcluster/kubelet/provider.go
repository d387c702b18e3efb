package kubelet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/seqops/sequencer-operator/internal/localcluster/podnet"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Provider is the virtual-kubelet provider that runs pods as local processes.
type Provider struct {
	ctx    context.Context
	cfg    *Config
	log    klog.Logger
	client kubernetes.Interface
	caCert []byte

	subnet podnet.Subnet
	ips    *ipam
	hosts  *hostsTable
	mounts *mountpoints

	configMaps corev1listers.ConfigMapLister
	secrets    corev1listers.SecretLister
	recorder   record.EventRecorder

	mu       sync.Mutex
	pods     map[string]*podRuntime
	notifyFn func(*corev1.Pod)
}

func (p *Provider) configMap(namespace, name string) (*corev1.ConfigMap, error) {
	return p.configMaps.ConfigMaps(namespace).Get(name)
}

func (p *Provider) secret(namespace, name string) (*corev1.Secret, error) {
	return p.secrets.Secrets(namespace).Get(name)
}

func (p *Provider) recordEvent(pod *corev1.Pod, typ, reason, msg string) {
	if p.recorder != nil {
		p.recorder.Event(pod, typ, reason, msg)
	}
}

// CreatePod starts the pod in the background; its progress arrives through NotifyPods.
func (p *Provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	p.mu.Lock()
	old := p.pods[key]
	p.mu.Unlock()
	if old != nil {
		if old.pod.UID == pod.UID {
			return nil
		}
		// An older pod of the same name is still stopping: let it finish first, or the two would
		// share a record and a hosts entry.
		old.stop(0)
		<-old.done
	}
	pr := newPodRuntime(p, pod)
	p.mu.Lock()
	p.pods[key] = pr
	p.mu.Unlock()
	pr.log.Info("Creating pod")
	go pr.run()
	pr.notify()
	return nil
}

// UpdatePod only matters when a new pod replaced one of the same name; spec changes to a running pod
// (labels, annotations) need no action from a process runtime.
func (p *Provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	pr := p.pods[podKey(pod.Namespace, pod.Name)]
	p.mu.Unlock()
	if pr == nil || pr.pod.UID != pod.UID {
		return p.CreatePod(ctx, pod)
	}
	pr.mu.Lock()
	pr.pod.Labels, pr.pod.Annotations = pod.Labels, pod.Annotations
	pr.mu.Unlock()
	return nil
}

// DeletePod stops the pod in the background: SIGTERM, the grace period, SIGKILL, then a terminal
// status through NotifyPods.
func (p *Provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	p.mu.Lock()
	pr := p.pods[key]
	p.mu.Unlock()
	if pr == nil || pr.pod.UID != pod.UID {
		return errdefs.NotFoundf("pod %s is not known to the kubelet", key)
	}
	grace := 30 * time.Second
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	go func() {
		pr.stop(grace)
		<-pr.done
		final := pr.snapshot()
		p.mu.Lock()
		if p.pods[key] == pr {
			delete(p.pods, key)
		}
		p.mu.Unlock()
		pr.log.Info("Pod stopped")
		pr.notifyMu.Lock()
		p.notify(final)
		pr.notifyMu.Unlock()
		// Like the kubelet, finish the deletion as soon as the containers are gone instead of letting
		// the pod controller wait out the whole grace period.
		uid := pod.UID
		err := p.client.CoreV1().Pods(pod.Namespace).Delete(p.ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			pr.log.Error(err, "Cannot finish pod deletion")
		}
	}()
	return nil
}

func (p *Provider) lookup(namespace, name string) *podRuntime {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pods[podKey(namespace, name)]
}

// GetPod returns the pod with its current status.
func (p *Provider) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pr := p.lookup(namespace, name)
	if pr == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not known to the kubelet", namespace, name)
	}
	return pr.snapshot(), nil
}

// GetPodStatus returns the pod's current status.
func (p *Provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

// GetPods returns every pod the kubelet runs.
func (p *Provider) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	prs := make([]*podRuntime, 0, len(p.pods))
	for _, pr := range p.pods {
		prs = append(prs, pr)
	}
	p.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(prs))
	for _, pr := range prs {
		out = append(out, pr.snapshot())
	}
	return out, nil
}

// NotifyPods registers the pod controller's callback for status changes.
func (p *Provider) NotifyPods(ctx context.Context, fn func(*corev1.Pod)) {
	p.mu.Lock()
	p.notifyFn = fn
	p.mu.Unlock()
}

func (p *Provider) notify(pod *corev1.Pod) {
	p.mu.Lock()
	fn := p.notifyFn
	p.mu.Unlock()
	if fn != nil {
		fn(pod)
	}
}

// stopAll stops every pod with at most grace each; used when the kubelet shuts down.
func (p *Provider) stopAll(grace time.Duration) {
	p.mu.Lock()
	prs := make([]*podRuntime, 0, len(p.pods))
	for _, pr := range p.pods {
		prs = append(prs, pr)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pr := range prs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := grace
			if tg := pr.pod.Spec.TerminationGracePeriodSeconds; tg != nil && time.Duration(*tg)*time.Second < g {
				g = time.Duration(*tg) * time.Second
			}
			pr.stop(g)
			<-pr.done
		}()
	}
	wg.Wait()
}

// GetContainerLogs serves `kubectl logs`: the current (or previous) log file of the container.
func (p *Provider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	pr := p.lookup(namespace, podName)
	if pr == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not known to the kubelet", namespace, podName)
	}
	c := pr.container(containerName)
	if c == nil {
		return nil, errdefs.NotFoundf("pod %s/%s has no container %q", namespace, podName, containerName)
	}
	pr.mu.Lock()
	n := c.restarts
	pr.mu.Unlock()
	if opts.Previous {
		if n == 0 {
			return nil, errdefs.NotFoundf("container %q has no previous run", containerName)
		}
		n--
	}
	path := c.logPath(n)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errdefs.NotFoundf("no log for container %q yet", containerName)
	}
	if opts.Tail > 0 {
		lines := bytes.SplitAfter(data, []byte("\n"))
		if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
			lines = lines[:len(lines)-1]
		}
		if len(lines) > opts.Tail {
			lines = lines[len(lines)-opts.Tail:]
		}
		data = bytes.Join(lines, nil)
	}
	if opts.LimitBytes > 0 && len(data) > opts.LimitBytes {
		data = data[:opts.LimitBytes]
	}
	if !opts.Follow {
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open log %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cannot seek log %s: %w", path, err)
	}
	return &followReader{ctx: ctx, head: bytes.NewReader(data), f: f}, nil
}

// followReader serves the already written part, then polls the file for more until ctx ends.
type followReader struct {
	ctx  context.Context
	head *bytes.Reader
	f    *os.File
}

func (r *followReader) Read(b []byte) (int, error) {
	if r.head.Len() > 0 {
		return r.head.Read(b)
	}
	for {
		n, err := r.f.Read(b)
		if n > 0 || (err != nil && err != io.EOF) {
			return n, err
		}
		select {
		case <-r.ctx.Done():
			return 0, io.EOF
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (r *followReader) Close() error { return r.f.Close() }

func (pr *podRuntime) container(name string) *containerRuntime {
	for _, c := range append(append([]*containerRuntime{}, pr.initContainers...), pr.containers...) {
		if c.spec.Name == name || name == "" {
			return c
		}
	}
	return nil
}

// RunInContainer serves `kubectl exec`: the command runs in the container's mount, network and UTS
// namespaces (nsenter), so it sees the container's volumes and /etc/hosts.
func (p *Provider) RunInContainer(ctx context.Context, namespace, podName, containerName string, cmd []string, attach api.AttachIO) error {
	pr := p.lookup(namespace, podName)
	if pr == nil {
		return errdefs.NotFoundf("pod %s/%s is not known to the kubelet", namespace, podName)
	}
	c := pr.container(containerName)
	if c == nil {
		return errdefs.NotFoundf("pod %s/%s has no container %q", namespace, podName, containerName)
	}
	pr.mu.Lock()
	pid := c.pid
	pr.mu.Unlock()
	if pid <= 0 {
		return errdefs.InvalidInputf("container %q is not running", containerName)
	}
	args := append([]string{"--target", strconv.Itoa(pid), "--mount", "--net", "--uts", "--"}, cmd...)
	ex := exec.CommandContext(ctx, "nsenter", args...)
	if attach.Stdin() != nil {
		ex.Stdin = attach.Stdin()
	}
	if attach.Stdout() != nil {
		ex.Stdout = attach.Stdout()
	}
	if attach.Stderr() != nil {
		ex.Stderr = attach.Stderr()
	}
	return ex.Run()
}

// AttachToContainer is not supported: container output goes to log files.
func (p *Provider) AttachToContainer(ctx context.Context, namespace, podName, containerName string, attach api.AttachIO) error {
	return errdefs.InvalidInput("attach is not supported by the local process kubelet; use kubectl logs")
}

// GetStatsSummary reports an empty summary; there is no resource accounting.
func (p *Provider) GetStatsSummary(ctx context.Context) (*statsv1alpha1.Summary, error) {
	return &statsv1alpha1.Summary{}, nil
}

// GetMetricsResource reports no metrics.
func (p *Provider) GetMetricsResource(ctx context.Context) ([]*dto.MetricFamily, error) {
	return nil, nil
}

// PortForward is not supported; pod IPs are reachable from the host directly.
func (p *Provider) PortForward(ctx context.Context, namespace, pod string, port int32, stream io.ReadWriteCloser) error {
	return errdefs.InvalidInput("port-forward is not supported by the local process kubelet; pod IPs are reachable from the host")
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:8]
}

func patterns(ms []ImageMapping) string {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	for i, m := range ms {
		if i > 0 {
			_, _ = w.WriteString(", ")
		}
		_, _ = fmt.Fprintf(w, "%s -> %s", m.Pattern, m.Binary)
	}
	_ = w.Flush()
	return b.String()
}
