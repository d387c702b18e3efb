package localcluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/internal/localcluster/kubelet"
	"github.com/seqops/sequencer-operator/internal/localcluster/podnet"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pod returns the kubelet's record of a running pod: its IP, network namespace, host veth and the PID
// of each container. It fails if the record belongs to an older pod of the same name.
func (c *Cluster) Pod(ctx context.Context, namespace, name string) (*kubelet.PodRecord, error) {
	pod, err := c.client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("cannot get pod %s/%s: %w", namespace, name, err)
	}
	rec, err := kubelet.ReadPodRecord(c.state.KubeletDir, namespace, name)
	if err != nil {
		return nil, err
	}
	if rec.UID != string(pod.UID) {
		return nil, fmt.Errorf("pod %s/%s (uid %s) is not running on the kubelet yet", namespace, name, pod.UID)
	}
	return rec, nil
}

// KillPodProcess sends sig to the process of one container of a pod behind the API's back, as a crash
// or an OOM kill would. container may be empty when the pod has one container.
func (c *Cluster) KillPodProcess(ctx context.Context, namespace, name, container string, sig syscall.Signal) error {
	rec, err := c.Pod(ctx, namespace, name)
	if err != nil {
		return err
	}
	if container == "" && len(rec.Containers) == 1 {
		for n := range rec.Containers {
			container = n
		}
	}
	pid := rec.Containers[container]
	if pid <= 0 {
		return fmt.Errorf("container %q of pod %s/%s has no running process", container, namespace, name)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("cannot signal pid %d of pod %s/%s: %w", pid, namespace, name, err)
	}
	return nil
}

// CutPodNetwork takes the pod's link down: nothing reaches it and it reaches nothing, until
// HealPodNetwork.
func (c *Cluster) CutPodNetwork(ctx context.Context, namespace, name string) error {
	rec, err := c.Pod(ctx, namespace, name)
	if err != nil {
		return err
	}
	return podnet.SetLink(ctx, rec.HostVeth, false)
}

// HealPodNetwork brings a cut pod's link back up.
func (c *Cluster) HealPodNetwork(ctx context.Context, namespace, name string) error {
	rec, err := c.Pod(ctx, namespace, name)
	if err != nil {
		return err
	}
	return podnet.SetLink(ctx, rec.HostVeth, true)
}

// ExecInPodNetwork runs argv (a host binary) inside the pod's network namespace, with the pod's
// /etc/hosts, and returns its combined output. Use it to check DNS names and ports as a pod sees them.
func (c *Cluster) ExecInPodNetwork(ctx context.Context, namespace, name string, argv ...string) ([]byte, error) {
	rec, err := c.Pod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	// `ip netns exec` only switches the network namespace; the pod's hosts file is added by entering the
	// mount namespace of one of its containers instead, when one runs.
	for _, pid := range rec.Containers {
		if pid > 0 {
			args := append([]string{"--target", strconv.Itoa(pid), "--mount", "--net", "--uts", "--"}, argv...)
			return runCombined(ctx, "nsenter", args...)
		}
	}
	return podnet.Exec(ctx, rec.Netns, argv...)
}

// killNetnsProcesses SIGKILLs every process whose network namespace is the named one: what is left of
// a pod whose kubelet died without stopping it.
func killNetnsProcesses(netns string) {
	var want syscall.Stat_t
	if err := syscall.Stat(filepath.Join(podnet.NetnsDir, netns), &want); err != nil {
		return
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
			continue
		}
		if st.Ino == want.Ino && st.Dev == want.Dev {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// ResolveFromPod looks host up the way the pod does, in the pod's /etc/hosts, and returns its
// addresses (none when the pod does not know the name).
func (c *Cluster) ResolveFromPod(ctx context.Context, namespace, name, host string) ([]string, error) {
	rec, err := c.Pod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return lookupHostsFile(rec.HostsFile, host)
}

// lookupHostsFile returns the addresses a hosts file gives host, in file order.
func lookupHostsFile(file, host string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read hosts file %s: %w", file, err)
	}
	var addrs []string
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		for _, f := range fields[min(1, len(fields)):] {
			if f == host {
				addrs = append(addrs, fields[0])
				break
			}
		}
	}
	return addrs, nil
}

// Resolve looks a cluster DNS name (a pod's <host>.<subdomain>.<ns>.svc.cluster.local or a Service's
// <svc>.<ns>.svc.cluster.local, also the shorter .svc and <svc>.<ns> forms) up from the host, in the
// kubelet's cluster-wide hosts table. Service names give the ready endpoints' pod IPs.
func (c *Cluster) Resolve(host string) ([]string, error) {
	return lookupHostsFile(kubelet.ClusterHostsFile(c.state.KubeletDir), host)
}

// DialContext dials from the host (pod IPs are reachable over the bridge), resolving cluster DNS
// names with Resolve and anything else normally. Plug it into an http.Transport to let a process
// outside the cluster (a test, an operator run out of cluster) use the names pods use.
func (c *Cluster) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot parse address %q: %w", addr, err)
	}
	if net.ParseIP(host) == nil {
		if addrs, err := c.Resolve(host); err == nil && len(addrs) > 0 {
			addr = net.JoinHostPort(addrs[0], port)
		}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// HTTPClient is an http.Client for the host that understands cluster DNS names (see DialContext).
func (c *Cluster) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, DialContext: c.DialContext}}
}

// DialFromPod connects to addr from inside the pod's network namespace, as a process of the pod would;
// a host name in addr is resolved through the pod's /etc/hosts.
func (c *Cluster) DialFromPod(ctx context.Context, namespace, name, network, addr string) (net.Conn, error) {
	rec, err := c.Pod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot parse address %q: %w", addr, err)
	}
	if net.ParseIP(host) == nil {
		addrs, err := c.ResolveFromPod(ctx, namespace, name, host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("pod %s/%s cannot resolve %q", namespace, name, host)
		}
		host = addrs[0]
	}
	return podnet.DialContext(ctx, filepath.Join(podnet.NetnsDir, rec.Netns), network, net.JoinHostPort(host, port))
}

// HTTPClientFromPod returns a client whose requests leave from inside the pod's network namespace and
// resolve names through its /etc/hosts: the view of the cluster a process in that pod has. It follows
// the pod by name, so it keeps working after the pod was recreated.
func (c *Cluster) HTTPClientFromPod(namespace, name string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.DialFromPod(ctx, namespace, name, network, addr)
		},
	}}
}
