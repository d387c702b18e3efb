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
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

func TestReadNodesDoesNotWaitForACutOffNode(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	urls := map[string]string{}
	for name, state := range map[string]string{"c-0": "Follower", "c-1": "Leader", "c-2": "hang"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if state == "hang" {
				select { // a partitioned node: the connection neither answers nor fails
				case <-hang:
				case <-r.Context().Done():
				}
				return
			}
			fmt.Fprintf(w, `{"nodeId":%q,"state":%q}`, name, state)
		}))
		defer srv.Close()
		urls[name] = srv.URL
	}
	r := &SequencerClusterReconciler{NodeURL: func(_ *seqv1.SequencerCluster, pod string) string { return urls[pod] }}
	s := &scope{cluster: &seqv1.SequencerCluster{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, pods: map[string]*corev1.Pod{}}
	for name := range urls {
		s.pods[name] = &corev1.Pod{}
	}
	began := time.Now()
	got := r.readNodes(context.Background(), s)
	took := time.Since(began)
	if len(got) != 2 || got["c-1"] == nil || got["c-0"] == nil {
		t.Fatalf("answers: %v", got)
	}
	if took > nodeStatusTimeout/2 {
		t.Fatalf("readNodes waited %v for a cut-off node although a leader and a majority answered", took)
	}

	// Without a leader among the answers it waits for everyone, up to the timeout.
	urls["c-1"] = urls["c-0"]
	began = time.Now()
	got = r.readNodes(context.Background(), s)
	if took := time.Since(began); took < nodeStatusTimeout-100*time.Millisecond || len(got) != 2 {
		t.Fatalf("without a leader: %d answers after %v, want 2 after the full timeout", len(got), took)
	}
}
