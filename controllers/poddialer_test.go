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
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestPodHostIPs(t *testing.T) {
	pod := func(ip string, deleting bool) *corev1.Pod {
		p := &corev1.Pod{Status: corev1.PodStatus{PodIP: ip}}
		if deleting {
			p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		}
		return p
	}
	urls := map[string]string{
		"c-0": "http://c-0.c-peers.ns.svc.cluster.local:8080",
		"c-1": "https://c-1.c-peers.ns.svc.cluster.local:8080",
		"c-2": "http://c-2.c-peers.ns.svc.cluster.local:8080",
		"c-3": "http://c-3.c-peers.ns.svc.cluster.local:8080",
		"c-4": "::not a url",
	}
	pods := map[string]*corev1.Pod{
		"c-0": pod("10.0.0.10", false),
		"c-1": pod("10.0.0.11", false),
		"c-2": pod("", false),          // scheduled, no IP yet: dialled by name
		"c-3": pod("10.0.0.13", true),  // being deleted: its IP may go to another pod
		"c-4": pod("10.0.0.14", false), // an unparsable URL is left alone
		"c-9": pod("10.0.0.19", false), // no URL: not a pod of the cluster's members
	}
	got := podHostIPs(urls, pods)
	want := map[string]string{
		"c-0.c-peers.ns.svc.cluster.local": "10.0.0.10",
		"c-1.c-peers.ns.svc.cluster.local": "10.0.0.11",
	}
	if !maps.Equal(got, want) {
		t.Errorf("podHostIPs = %v, want %v", got, want)
	}
}

// A name that resolves nowhere reaches the pod's server once Learn knows its IP; another cluster's pass does
// not disturb it, the cluster's next pass replaces it, and Forget drops it.
func TestPodDialerDialsLearnedIPs(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "node") }))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// .invalid never resolves (RFC 2606): only the dialer can make this URL work.
	url := "http://c-0.c-peers.ns.svc.invalid:" + port
	d := NewPodDialer()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: d.Transport()}
	get := func() error {
		resp, err := hc.Get(url + "/raft")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "node" {
			t.Errorf("body %q", body)
		}
		return nil
	}
	cluster := types.NamespacedName{Namespace: "ns", Name: "c"}
	if err := get(); err == nil {
		t.Fatal("an unknown name must be dialled as given, and fail")
	}
	d.Learn(cluster, map[string]string{"c-0": url}, map[string]*corev1.Pod{"c-0": {Status: corev1.PodStatus{PodIP: "127.0.0.1"}}})
	if err := get(); err != nil {
		t.Fatalf("after Learn: %v", err)
	}
	d.Learn(types.NamespacedName{Namespace: "ns", Name: "other"}, nil, nil)
	if err := get(); err != nil {
		t.Fatalf("after another cluster's pass: %v", err)
	}
	hc.CloseIdleConnections()
	d.Learn(cluster, map[string]string{"c-0": url}, map[string]*corev1.Pod{"c-0": {}})
	if err := get(); err == nil {
		t.Error("a pass that finds the pod without an IP must drop the old one")
	}
	d.Learn(cluster, map[string]string{"c-0": url}, map[string]*corev1.Pod{"c-0": {Status: corev1.PodStatus{PodIP: "127.0.0.1"}}})
	d.Forget(cluster)
	hc.CloseIdleConnections()
	if err := get(); err == nil {
		t.Error("after Forget the name must be dialled as given")
	}
}
