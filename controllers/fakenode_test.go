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
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// fakeRaft is an in-memory Raft group behind httptest servers that speak the node API contract of
// pkg/nodeapi: one server per pod, a shared configuration whose index grows with every change, 409 on a stale
// configIndex, 401 without the token, membership and transfers answered by the leader only, an SSE stream on
// /raft/watch, and an "autopilot" that promotes a non-voter after promoteAfter.
type fakeRaft struct {
	mu           sync.Mutex
	cluster      string
	token        string
	nodes        map[string]*fakeNode
	config       nodeapi.Configuration
	commitIndex  uint64
	leader       string
	term         uint64
	height       uint64
	promoteAfter time.Duration
	// holdCommit keeps the commit index below the configuration index (an uncommitted change).
	holdCommit bool
	calls      []string
}

type fakeNode struct {
	id  string
	srv *httptest.Server
	// up is false while the pod does not run: the API then answers 503 and streams end.
	up bool
	// hasState is false for a node that never joined or lost its disk.
	hasState bool
	// wiped is true from losing the disk until the node is added again: it must not rejoin on its own.
	wiped      bool
	catchingUp bool
	subs       map[chan struct{}]bool
}

func newFakeRaft(cluster, token string, size int) *fakeRaft {
	f := &fakeRaft{cluster: cluster, token: token, nodes: map[string]*fakeNode{}, promoteAfter: 200 * time.Millisecond}
	for i := range size {
		id := cluster + "-" + strconv.Itoa(i)
		n := &fakeNode{id: id, subs: map[chan struct{}]bool{}}
		n.srv = httptest.NewServer(f.handler(n))
		f.nodes[id] = n
	}
	return f
}

func (f *fakeRaft) close() {
	for _, n := range f.nodes {
		n.srv.CloseClientConnections()
		n.srv.Close()
	}
}

func (f *fakeRaft) url(pod string) string {
	if n, ok := f.nodes[pod]; ok {
		return n.srv.URL
	}
	return "http://127.0.0.1:1"
}

// notify wakes every watch stream; callers hold f.mu.
func (f *fakeRaft) notify() {
	for _, n := range f.nodes {
		for ch := range n.subs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

func (f *fakeRaft) memberIndex(id string) int {
	return slices.IndexFunc(f.config.Servers, func(m nodeapi.Member) bool { return m.ID == id })
}

// changeConfig bumps the configuration index; callers hold f.mu.
func (f *fakeRaft) changeConfig() {
	f.config.Index = max(f.config.Index, f.commitIndex) + 1
	if !f.holdCommit {
		f.commitIndex = f.config.Index
	}
}

// start brings a pod's node up, as the kubelet would, with the initial cluster state of its ConfigMap:
// pod 0 with no state and "new" bootstraps a one-member cluster, every other node waits to be added.
func (f *fakeRaft) start(pod, initialState string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[pod]
	if n == nil || n.up {
		return
	}
	n.up = true
	if !n.wiped && f.memberIndex(pod) >= 0 {
		n.hasState = true
	}
	if !n.hasState && initialState == "new" && pod == f.cluster+"-0" && len(f.config.Servers) == 0 {
		n.hasState = true
		f.config.Servers = []nodeapi.Member{{ID: pod, Address: pod + ":7000", Suffrage: nodeapi.SuffrageVoter}}
		f.changeConfig()
		f.calls = append(f.calls, "bootstrap "+pod)
	}
	f.elect()
	f.notify()
}

// stop takes a pod's node down; wipe also loses its disk.
func (f *fakeRaft) stop(pod string, wipe bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[pod]
	if n == nil {
		return
	}
	n.up = false
	if wipe {
		n.hasState, n.wiped = false, true
	}
	f.calls = append(f.calls, "stop "+pod)
	if f.leader == pod || !f.quorumUp() {
		// A leader that lost its quorum steps down once its lease runs out.
		f.leader = ""
	}
	f.elect()
	f.notify()
}

// quorumUp is true when a quorum of the voters is up with state; callers hold f.mu.
func (f *fakeRaft) quorumUp() bool {
	voters, up := 0, 0
	for _, m := range f.config.Servers {
		if m.Suffrage == nodeapi.SuffrageVoter {
			voters++
			if n := f.nodes[m.ID]; n != nil && n.up && n.hasState {
				up++
			}
		}
	}
	return voters > 0 && up >= voters/2+1
}

// elect picks a leader among the up voters with state when a quorum of voters is up; callers hold f.mu.
func (f *fakeRaft) elect() {
	if f.leader != "" {
		return
	}
	voters, up := 0, []string{}
	for _, m := range f.config.Servers {
		if m.Suffrage != nodeapi.SuffrageVoter {
			continue
		}
		voters++
		if n := f.nodes[m.ID]; n != nil && n.up && n.hasState {
			up = append(up, m.ID)
		}
	}
	if voters > 0 && len(up) >= voters/2+1 {
		slices.Sort(up)
		f.leader = up[0]
		f.term++
	}
}

func (f *fakeRaft) setLeader(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leader = id
	f.term++
	f.notify()
}

func (f *fakeRaft) snapshot() (leader string, cfg nodeapi.Configuration, calls []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cfg = f.config
	cfg.Servers = slices.Clone(cfg.Servers)
	return f.leader, cfg, slices.Clone(f.calls)
}

// status is a node's /raft document; callers hold f.mu.
func (f *fakeRaft) status(n *fakeNode) nodeapi.Status {
	st := nodeapi.Status{NodeID: n.id, Address: n.id + ":7000", State: nodeapi.StateFollower, Version: "fake"}
	if !n.hasState || f.memberIndex(n.id) < 0 {
		return st
	}
	st.Term = f.term
	st.LeaderID = f.leader
	st.CommitIndex = f.commitIndex
	st.AppliedIndex = f.commitIndex
	st.LastLogIndex = f.config.Index
	st.Height = f.height
	st.CatchingUp = n.catchingUp
	if n.catchingUp {
		st.Lag = 100
	}
	st.Configuration = f.config
	st.Configuration.Servers = slices.Clone(f.config.Servers)
	if f.leader == n.id {
		st.State = nodeapi.StateLeader
		st.Producing = true
		ap := &nodeapi.AutopilotHealth{Healthy: true}
		voters, healthy := 0, 0
		for _, m := range f.config.Servers {
			o := f.nodes[m.ID]
			ok := o != nil && o.up && o.hasState && !o.catchingUp
			ap.Healthy = ap.Healthy && ok
			ap.Servers = append(ap.Servers, nodeapi.ServerHealth{ID: m.ID, Healthy: ok, Voter: m.Suffrage == nodeapi.SuffrageVoter})
			if m.Suffrage == nodeapi.SuffrageVoter {
				voters++
				if ok {
					healthy++
				}
			}
		}
		ap.FailureTolerance = max(healthy-(voters/2+1), 0)
		st.Autopilot = ap
	}
	return st
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeRaft) handler(n *fakeNode) http.Handler {
	mux := http.NewServeMux()
	// guard answers 503 while the node is down and, for membership calls, 401 without the token and 503 off the leader.
	guard := func(auth bool, h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			if !n.up {
				f.mu.Unlock()
				writeJSON(w, http.StatusServiceUnavailable, nodeapi.Error{Message: "node is down"})
				return
			}
			if auth && r.Header.Get("Authorization") != "Bearer "+f.token {
				f.mu.Unlock()
				writeJSON(w, http.StatusUnauthorized, nodeapi.Error{Message: "missing or wrong bearer token"})
				return
			}
			if auth && f.leader != n.id {
				f.mu.Unlock()
				writeJSON(w, http.StatusServiceUnavailable, nodeapi.Error{Message: "not the leader", LeaderID: f.leader})
				return
			}
			defer f.mu.Unlock()
			h(w, r)
		}
	}
	mux.HandleFunc("GET /raft", guard(false, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, f.status(n))
	}))
	mux.HandleFunc("GET /raft/members", guard(false, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, f.config)
	}))
	mux.HandleFunc("POST /raft/members", guard(true, func(w http.ResponseWriter, r *http.Request) {
		var req nodeapi.AddMemberRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ID == "" {
			writeJSON(w, http.StatusBadRequest, nodeapi.Error{Message: "body must be {id, address}"})
			return
		}
		if req.ConfigIndex != 0 && req.ConfigIndex != f.config.Index {
			writeJSON(w, http.StatusConflict, nodeapi.Error{Message: "stale configIndex", ConfigIndex: f.config.Index})
			return
		}
		if f.memberIndex(req.ID) >= 0 {
			writeJSON(w, http.StatusConflict, nodeapi.Error{Message: req.ID + " is already a member", ConfigIndex: f.config.Index})
			return
		}
		suffrage := nodeapi.SuffrageNonvoter
		if req.Voter {
			suffrage = nodeapi.SuffrageVoter
		}
		f.config.Servers = append(f.config.Servers, nodeapi.Member{ID: req.ID, Address: req.Address, Suffrage: suffrage})
		f.changeConfig()
		f.calls = append(f.calls, "add "+req.ID)
		if o := f.nodes[req.ID]; o != nil {
			o.hasState, o.wiped = o.up, false
		}
		if !req.Voter {
			time.AfterFunc(f.promoteAfter, func() { f.promote(req.ID) })
		}
		f.notify()
		writeJSON(w, http.StatusOK, nodeapi.MembershipResponse{Configuration: f.config})
	}))
	mux.HandleFunc("DELETE /raft/members/{id}", guard(true, func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if ci := r.URL.Query().Get("configIndex"); ci != "" && ci != strconv.FormatUint(f.config.Index, 10) {
			writeJSON(w, http.StatusConflict, nodeapi.Error{Message: "stale configIndex", ConfigIndex: f.config.Index})
			return
		}
		i := f.memberIndex(id)
		if i < 0 {
			writeJSON(w, http.StatusNotFound, nodeapi.Error{Message: id + " is not a member"})
			return
		}
		f.config.Servers = slices.Delete(f.config.Servers, i, i+1)
		f.changeConfig()
		f.calls = append(f.calls, "remove "+id)
		if id == f.leader {
			f.leader = ""
			f.elect()
		}
		f.notify()
		writeJSON(w, http.StatusOK, nodeapi.MembershipResponse{Configuration: f.config})
	}))
	mux.HandleFunc("POST /raft/transfer-leadership", guard(true, func(w http.ResponseWriter, r *http.Request) {
		var req nodeapi.TransferRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		i := f.memberIndex(req.ID)
		if i < 0 || f.config.Servers[i].Suffrage != nodeapi.SuffrageVoter || !f.nodes[req.ID].up {
			writeJSON(w, http.StatusBadRequest, nodeapi.Error{Message: fmt.Sprintf("%q is not an up voter", req.ID)})
			return
		}
		f.calls = append(f.calls, "transfer "+f.leader+"->"+req.ID)
		f.leader = req.ID
		f.term++
		f.notify()
		writeJSON(w, http.StatusOK, nodeapi.TransferResponse{LeaderID: req.ID, LeaderAddress: req.ID + ":7000"})
	}))
	mux.HandleFunc("GET /raft/watch", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		if !n.up {
			f.mu.Unlock()
			writeJSON(w, http.StatusServiceUnavailable, nodeapi.Error{Message: "node is down"})
			return
		}
		ch := make(chan struct{}, 1)
		n.subs[ch] = true
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(n.subs, ch)
			f.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		flusher := w.(http.Flusher)
		for {
			f.mu.Lock()
			up, st := n.up, f.status(n)
			f.mu.Unlock()
			if !up {
				return
			}
			data, _ := json.Marshal(st)
			if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
				return
			}
			flusher.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-ch:
			}
		}
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return mux
}

// promote is the fake autopilot: a non-voter that is up and caught up becomes a voter.
func (f *fakeRaft) promote(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.memberIndex(id)
	if i < 0 || f.config.Servers[i].Suffrage == nodeapi.SuffrageVoter {
		return
	}
	if n := f.nodes[id]; n == nil || !n.up || n.catchingUp {
		time.AfterFunc(f.promoteAfter, func() { f.promote(id) })
		return
	}
	f.config.Servers[i].Suffrage = nodeapi.SuffrageVoter
	f.changeConfig()
	f.calls = append(f.calls, "promote "+id)
	f.notify()
}

func (f *fakeRaft) callsMatching(prefix string) []string {
	_, _, calls := f.snapshot()
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}
