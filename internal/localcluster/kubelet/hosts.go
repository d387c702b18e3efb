package kubelet

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// hostsTable keeps every pod's /etc/hosts current: each running pod's file names all pods that have
// an IP, by their stable DNS names (<hostname>.<subdomain>.<ns>.svc.cluster.local and shorter forms),
// which is what the cluster DNS would answer for pods behind a headless Service.
type hostsTable struct {
	mu      sync.Mutex
	gateway string
	pods    map[string]hostsEntry // pod key -> entry
}

type hostsEntry struct {
	namespace, hostname, subdomain, ip, file string
}

func newHostsTable(gateway string) *hostsTable {
	return &hostsTable{gateway: gateway, pods: map[string]hostsEntry{}}
}

func (h *hostsTable) add(key string, pod *corev1.Pod, ip, file string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pods[key] = hostsEntry{namespace: pod.Namespace, hostname: podHostname(pod), subdomain: pod.Spec.Subdomain, ip: ip, file: file}
	h.rewriteLocked()
}

func (h *hostsTable) remove(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.pods[key]; !ok {
		return
	}
	delete(h.pods, key)
	h.rewriteLocked()
}

// rewriteLocked rewrites every file in place: a file bind-mounted at /etc/hosts keeps its inode only
// if it is truncated and written, not replaced by rename.
func (h *hostsTable) rewriteLocked() {
	keys := make([]string, 0, len(h.pods))
	for k := range h.pods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		self := h.pods[k]
		var b strings.Builder
		b.WriteString("# Kubernetes-managed hosts file (localcluster process kubelet).\n")
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
		fmt.Fprintf(&b, "%s\tkubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local\n", h.gateway)
		for _, ok := range keys {
			other := h.pods[ok]
			names := hostNames(other, self.namespace, ok == k)
			if len(names) > 0 {
				fmt.Fprintf(&b, "%s\t%s\n", other.ip, strings.Join(names, " "))
			}
		}
		_ = os.WriteFile(self.file, []byte(b.String()), 0o644)
	}
}

// hostNames lists the names under which pod e is known to a reader in namespace readerNS.
func hostNames(e hostsEntry, readerNS string, self bool) []string {
	var names []string
	if e.subdomain != "" {
		base := e.hostname + "." + e.subdomain + "." + e.namespace
		names = append(names, base+".svc.cluster.local", base+".svc", base)
		if e.namespace == readerNS {
			names = append(names, e.hostname+"."+e.subdomain)
		}
	}
	if self {
		names = append(names, e.hostname)
	}
	return names
}
