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
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// PodDialer connects to a node API by the pod IP the API server reports, not through DNS. A new pod's DNS
// name resolves only after the cluster DNS (or, on the local cluster, /etc/hosts, which Go re-reads at most
// every 5 s) has caught up, and a name looked up too early may be cached as missing: a joining member would
// wait seconds for the operator to add it, and a status read could miss a restarted pod. URLs keep the
// pod's DNS name, so TLS still verifies the certificate against it. A host it has no IP for is dialled
// as given.
type PodDialer struct {
	dialer net.Dialer
	mu     sync.RWMutex
	// ips maps a node API host name to its pod's IP; hosts remembers each cluster's names, so a pass
	// replaces what the previous one learned.
	ips   map[string]string
	hosts map[types.NamespacedName][]string
}

// NewPodDialer returns a dialer that knows no pods yet.
func NewPodDialer() *PodDialer {
	return &PodDialer{dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		ips: map[string]string{}, hosts: map[types.NamespacedName][]string{}}
}

// DialContext dials addr ("host:port"), replacing a known pod host name by its IP.
func (d *PodDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if host, port, err := net.SplitHostPort(addr); err == nil {
		d.mu.RLock()
		ip := d.ips[host]
		d.mu.RUnlock()
		if ip != "" {
			addr = net.JoinHostPort(ip, port)
		}
	}
	return d.dialer.DialContext(ctx, network, addr)
}

// Transport is an HTTP transport that dials through d, with net/http's defaults otherwise (and no proxy).
func (d *PodDialer) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = d.DialContext
	// Node APIs are addresses inside the cluster: a proxy from the environment must not carry them.
	t.Proxy = nil
	return t
}

// Learn sets the pod IPs of one cluster: urls maps a pod's name to its node API URL, pods are the pods the
// API server reports. A pod without an IP yet, or being deleted, is dialled by name.
func (d *PodDialer) Learn(cluster types.NamespacedName, urls map[string]string, pods map[string]*corev1.Pod) {
	learned := podHostIPs(urls, pods)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range d.hosts[cluster] {
		delete(d.ips, h)
	}
	hosts := make([]string, 0, len(learned))
	for h, ip := range learned {
		d.ips[h] = ip
		hosts = append(hosts, h)
	}
	d.hosts[cluster] = hosts
}

// Forget drops what was learned about a deleted cluster.
func (d *PodDialer) Forget(cluster types.NamespacedName) { d.Learn(cluster, nil, nil) }

// podHostIPs maps the host of each pod's URL to the pod's IP, for pods that have one and are not being deleted.
func podHostIPs(urls map[string]string, pods map[string]*corev1.Pod) map[string]string {
	out := map[string]string{}
	for name, raw := range urls {
		p := pods[name]
		if p == nil || p.Status.PodIP == "" || !p.DeletionTimestamp.IsZero() {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			continue
		}
		out[u.Hostname()] = p.Status.PodIP
	}
	return out
}
