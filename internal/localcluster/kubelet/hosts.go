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
//
// Services get names too: <svc>.<ns>.svc.cluster.local resolves to the addresses of the Service's
// ready endpoints (there is no kube-proxy, so a ClusterIP would lead nowhere; the endpoints' pod IPs
// do). A reader that wants the leader Service thus reaches the leader pod.
//
// A cluster-wide copy (clusterFile) lets processes on the host resolve the same names.
type hostsTable struct {
	mu          sync.Mutex
	gateway     string
	clusterFile string
	pods        map[string]hostsEntry // pod key -> entry
	services    map[string][]string   // "<svc>.<ns>" -> endpoint IPs
}

type hostsEntry struct {
	namespace, hostname, subdomain, ip, file string
}

func newHostsTable(gateway, clusterFile string) *hostsTable {
	h := &hostsTable{gateway: gateway, clusterFile: clusterFile, pods: map[string]hostsEntry{}, services: map[string][]string{}}
	h.rewriteLocked()
	return h
}

// setServices replaces the Service endpoint table.
func (h *hostsTable) setServices(services map[string][]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if equalServices(h.services, services) {
		return
	}
	h.services = services
	h.rewriteLocked()
}

func equalServices(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || strings.Join(v, ",") != strings.Join(w, ",") {
			return false
		}
	}
	return true
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
	svcs := make([]string, 0, len(h.services))
	for k := range h.services {
		svcs = append(svcs, k)
	}
	sort.Strings(svcs)
	render := func(self *hostsEntry, selfKey string) []byte {
		var b strings.Builder
		b.WriteString("# Kubernetes-managed hosts file (localcluster process kubelet).\n")
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
		fmt.Fprintf(&b, "%s\tkubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local\n", h.gateway)
		readerNS := ""
		if self != nil {
			readerNS = self.namespace
		}
		for _, ok := range keys {
			other := h.pods[ok]
			if names := hostNames(other, readerNS, ok == selfKey); len(names) > 0 {
				fmt.Fprintf(&b, "%s\t%s\n", other.ip, strings.Join(names, " "))
			}
		}
		for _, svc := range svcs {
			name, ns, _ := strings.Cut(svc, ".")
			names := svc + ".svc.cluster.local " + svc + ".svc " + svc
			if ns == readerNS {
				names += " " + name
			}
			for _, ip := range h.services[svc] {
				fmt.Fprintf(&b, "%s\t%s\n", ip, names)
			}
		}
		return []byte(b.String())
	}
	for _, k := range keys {
		self := h.pods[k]
		_ = os.WriteFile(self.file, render(&self, k), 0o644)
	}
	if h.clusterFile != "" {
		_ = os.WriteFile(h.clusterFile, render(nil, ""), 0o644)
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
