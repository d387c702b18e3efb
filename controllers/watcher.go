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
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// NodeWatcher keeps one /raft/watch stream per pod of every cluster and turns every change that matters
// (state, leader, term, configuration, catching up) into a reconcile request through a channel source. This is
// what brings a leader change to status.leader and the leader label within a second, without polling.
type NodeWatcher struct {
	events     chan event.TypedGenericEvent[*seqv1.SequencerCluster]
	httpClient *http.Client
	clock      func() time.Time
	log        logr.Logger

	base   context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	clusters map[types.NamespacedName]*clusterWatch
}

type clusterWatch struct {
	key  types.NamespacedName
	pods map[string]*podWatch
	// last is a fingerprint of each pod's last document; only a changed fingerprint triggers a reconcile.
	last map[string]string
	// leader and leaderLostAt time failovers: from losing the leader to a new one reporting itself.
	leader       string
	leaderLostAt time.Time
}

type podWatch struct {
	url    string
	cancel context.CancelFunc
	client *http.Client
}

// NewNodeWatcher returns a watcher; httpClient (nil for the default) carries the streams.
func NewNodeWatcher(httpClient *http.Client, log logr.Logger) *NodeWatcher {
	if httpClient == nil {
		httpClient = &http.Client{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &NodeWatcher{
		events:     make(chan event.TypedGenericEvent[*seqv1.SequencerCluster], 1024),
		httpClient: httpClient,
		clock:      time.Now,
		log:        log,
		base:       ctx,
		cancel:     cancel,
		clusters:   map[types.NamespacedName]*clusterWatch{},
	}
}

// Source feeds the watcher's changes into a controller.
func (w *NodeWatcher) Source() source.Source {
	return source.Channel(w.events, &handler.TypedEnqueueRequestForObject[*seqv1.SequencerCluster]{})
}

// Start lets the manager run the watcher: it blocks until ctx ends, then stops every stream.
func (w *NodeWatcher) Start(ctx context.Context) error {
	<-ctx.Done()
	w.Stop()
	return nil
}

// Stop ends every stream.
func (w *NodeWatcher) Stop() {
	w.cancel()
}

// Sync makes the streams of cluster key match targets (pod name to node API base URL). hc, when not nil,
// is the client for this cluster's nodes (TLS); a changed client restarts the streams.
func (w *NodeWatcher) Sync(key types.NamespacedName, targets map[string]string, hc *http.Client) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.base.Err() != nil {
		return
	}
	cw := w.clusters[key]
	if cw == nil {
		cw = &clusterWatch{key: key, pods: map[string]*podWatch{}, last: map[string]string{}}
		w.clusters[key] = cw
	}
	for pod, pw := range cw.pods {
		if url, ok := targets[pod]; !ok || url != pw.url || pw.client != hc {
			pw.cancel()
			delete(cw.pods, pod)
			delete(cw.last, pod)
		}
	}
	for pod, url := range targets {
		if _, ok := cw.pods[pod]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(w.base)
		cw.pods[pod] = &podWatch{url: url, cancel: cancel, client: hc}
		w.log.V(1).Info("Watching node", "cluster", key, "pod", pod, "url", url)
		go w.run(ctx, cw, pod, url, hc)
	}
}

// Forget stops the streams of a deleted cluster.
func (w *NodeWatcher) Forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cw := w.clusters[key]; cw != nil {
		for _, pw := range cw.pods {
			pw.cancel()
		}
		delete(w.clusters, key)
	}
}

func (w *NodeWatcher) run(ctx context.Context, cw *clusterWatch, pod, url string, hc *http.Client) {
	if hc == nil {
		hc = w.httpClient
	}
	client := nodeapi.NewClient(url, nodeapi.WithHTTPClient(hc))
	backoff := 100 * time.Millisecond
	for {
		err := client.Watch(ctx, func(st nodeapi.Status) error {
			backoff = 100 * time.Millisecond
			w.observe(ctx, cw, pod, &st)
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		w.log.V(1).Info("Node watch ended, retrying", "cluster", cw.key, "pod", pod, "error", err, "backoff", backoff)
		w.observe(ctx, cw, pod, nil)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// fingerprint keeps the fields whose change must reach the controller at once; height and indexes move with
// every block and are picked up by the next pass or the resync instead. The leader's autopilot view is in
// it because it decides failure tolerance and QuorumHealthy.
func fingerprint(st *nodeapi.Status) string {
	if st == nil {
		return "unreachable"
	}
	fp := st.State + "|" + st.LeaderID + "|" + itoa(st.Term) + "|" + itoa(st.Configuration.Index) + "|" +
		itoa(uint64(len(st.Configuration.Servers))) + "|" + boolStr(st.CatchingUp) + "|" + boolStr(st.Producing) + "|" +
		boolStr(st.Rejoining)
	if ap := st.Autopilot; ap != nil {
		fp += "|" + boolStr(ap.Healthy) + "|" + itoa(uint64(max(ap.FailureTolerance, 0)))
		for _, s := range ap.Servers {
			fp += "|" + s.ID + ":" + boolStr(s.Healthy) + boolStr(s.Voter)
		}
	}
	return fp
}

func (w *NodeWatcher) observe(ctx context.Context, cw *clusterWatch, pod string, st *nodeapi.Status) {
	w.mu.Lock()
	if w.clusters[cw.key] != cw {
		w.mu.Unlock()
		return
	}
	fp := fingerprint(st)
	changed := cw.last[pod] != fp
	cw.last[pod] = fp
	now := w.clock()
	switch {
	case st != nil && st.State == nodeapi.StateLeader:
		if st.NodeID != cw.leader && (cw.leader != "" || !cw.leaderLostAt.IsZero()) {
			leaderChanges.WithLabelValues(cw.key.Namespace, cw.key.Name).Inc()
			if !cw.leaderLostAt.IsZero() {
				failoverDuration.WithLabelValues(cw.key.Namespace, cw.key.Name).Observe(now.Sub(cw.leaderLostAt).Seconds())
			}
		}
		cw.leader, cw.leaderLostAt = st.NodeID, time.Time{}
	case cw.leader != "" && cw.leaderLostAt.IsZero() && (pod == cw.leader || (st != nil && st.LeaderID != cw.leader)):
		// The leader's own stream broke, it no longer leads, or a follower no longer follows it: whichever
		// the watcher sees first starts the failover clock.
		cw.leaderLostAt = now
	}
	w.mu.Unlock()
	if !changed {
		return
	}
	ev := event.TypedGenericEvent[*seqv1.SequencerCluster]{Object: &seqv1.SequencerCluster{}}
	ev.Object.Name, ev.Object.Namespace = cw.key.Name, cw.key.Namespace
	select {
	case w.events <- ev:
	case <-ctx.Done():
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func boolStr(b bool) string {
	if b {
		return "t"
	}
	return "f"
}
