package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

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
