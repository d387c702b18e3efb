package kubelet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestHostsTableRendersPodsAndServices(t *testing.T) {
	dir := t.TempDir()
	h := newHostsTable("10.213.0.1", filepath.Join(dir, "cluster"))
	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: corev1.PodSpec{Hostname: name, Subdomain: "peers"}}
	}
	h.add("ns/a", pod("a"), "10.213.0.2", filepath.Join(dir, "a"))
	h.add("ns/b", pod("b"), "10.213.0.3", filepath.Join(dir, "b"))
	h.setServices(map[string][]string{"leader.ns": {"10.213.0.3"}})

	a, _ := os.ReadFile(filepath.Join(dir, "a"))
	for _, want := range []string{
		"10.213.0.1\tkubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local",
		"10.213.0.2\ta.peers.ns.svc.cluster.local a.peers.ns.svc a.peers.ns a.peers a\n",
		"10.213.0.3\tb.peers.ns.svc.cluster.local b.peers.ns.svc b.peers.ns b.peers\n",
		"10.213.0.3\tleader.ns.svc.cluster.local leader.ns.svc leader.ns leader\n",
	} {
		if !strings.Contains(string(a), want) {
			t.Errorf("hosts of a lacks %q:\n%s", want, a)
		}
	}
	h.remove("ns/b")
	a, _ = os.ReadFile(filepath.Join(dir, "a"))
	if strings.Contains(string(a), "b.peers") {
		t.Errorf("removed pod still named:\n%s", a)
	}
	cluster, _ := os.ReadFile(filepath.Join(dir, "cluster"))
	if !strings.Contains(string(cluster), "a.peers.ns.svc.cluster.local") || strings.Contains(string(cluster), " a\n") {
		t.Errorf("cluster-wide file should hold FQDNs and no pod's own short name:\n%s", cluster)
	}
}
