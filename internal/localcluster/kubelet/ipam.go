package kubelet

import (
	"fmt"
	"net"
	"sync"
)

// ipam hands out pod IPs from the /24, .2 to .254 (.1 is the bridge). It continues round-robin after
// the last address it gave, so a deleted pod's address is not reused at once while peers may still
// have it cached.
type ipam struct {
	mu    sync.Mutex
	base  net.IP
	used  map[byte]string // last octet -> pod key
	byKey map[string]byte
	next  byte
}

func newIPAM(network *net.IPNet) *ipam {
	return &ipam{base: network.IP.To4(), used: map[byte]string{}, byKey: map[string]byte{}, next: 2}
}

func (a *ipam) allocate(key string) (net.IP, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if o, ok := a.byKey[key]; ok {
		return a.ip(o), nil
	}
	for i := 0; i < 253; i++ {
		o := a.next
		a.next++
		if a.next > 254 || a.next < 2 {
			a.next = 2
		}
		if _, taken := a.used[o]; !taken && o >= 2 && o <= 254 {
			a.used[o] = key
			a.byKey[key] = o
			return a.ip(o), nil
		}
	}
	return nil, fmt.Errorf("cannot allocate an IP for pod %s: the pod network is full", key)
}

func (a *ipam) release(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if o, ok := a.byKey[key]; ok {
		delete(a.used, o)
		delete(a.byKey, key)
	}
}

func (a *ipam) ip(o byte) net.IP {
	return net.IPv4(a.base[0], a.base[1], a.base[2], o).To4()
}
