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
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

func TestMemberFailure(t *testing.T) {
	const corrupted = "node: raft store /data/raft/raft.db is corrupted: page 7: invalid type\n"
	exited := func(code int32, reason, msg string) *corev1.ContainerStateTerminated {
		return &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, Message: msg}
	}
	backoff := &corev1.ContainerStateWaiting{Reason: crashLoopBackOff, Message: "back-off 10s restarting failed container node"}
	pod := func(cs ...corev1.ContainerStatus) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: cs}}
	}
	node := func(restarts int32, state corev1.ContainerState, last *corev1.ContainerStateTerminated) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: containerName, RestartCount: restarts, State: state,
			LastTerminationState: corev1.ContainerState{Terminated: last}}
	}
	started := func(cs corev1.ContainerStatus) corev1.ContainerStatus {
		cs.Started = ptr.To(true)
		return cs
	}
	deleting := pod(node(3, corev1.ContainerState{Waiting: backoff}, exited(1, "Error", corrupted)))
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	logTail := "{\"level\":\"info\",\"msg\":\"opening\"}\n" + corrupted + "\n\n"

	cases := []struct {
		name    string
		pod     *corev1.Pod
		answers bool
		want    string
	}{
		{"no pod", nil, false, ""},
		{"crash-looping with a message", pod(node(3, corev1.ContainerState{Waiting: backoff}, exited(1, "Error", corrupted))), false,
			"exited with code 1: node: raft store /data/raft/raft.db is corrupted: page 7: invalid type"},
		{"exited again, before the back-off", pod(node(1, corev1.ContainerState{Terminated: exited(1, "Error", corrupted)}, exited(1, "Error", "older"))), false,
			"exited with code 1: node: raft store /data/raft/raft.db is corrupted: page 7: invalid type"},
		{"log tail: its last line", pod(node(2, corev1.ContainerState{Waiting: backoff}, exited(1, "Error", logTail))), false,
			"exited with code 1: node: raft store /data/raft/raft.db is corrupted: page 7: invalid type"},
		{"killed again and again, no message", pod(node(4, corev1.ContainerState{Waiting: backoff}, exited(137, "OOMKilled", ""))), false,
			"exited with code 137 (OOMKilled)"},
		{"killed once (a SIGKILLed leader), in its back-off", pod(node(1, corev1.ContainerState{Waiting: backoff}, exited(137, "Error", ""))), false, ""},
		{"killed twice", pod(node(2, corev1.ContainerState{Terminated: exited(137, "Error", "")}, exited(137, "Error", ""))), false, ""},
		{"never ran", pod(node(2, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: crashLoopBackOff, Message: "cannot launch container: no such file"}}, nil)), false,
			"cannot start: cannot launch container: no such file"},
		{"first exit is not yet a failure", pod(node(0, corev1.ContainerState{Terminated: exited(1, "Error", corrupted)}, nil)), false, ""},
		{"clean exit", pod(node(1, corev1.ContainerState{Terminated: exited(0, "Completed", "")}, exited(1, "Error", corrupted))), false, ""},
		{"running again after a failure, not started yet", pod(node(1, corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, exited(1, "Error", corrupted))), false,
			"exited with code 1: node: raft store /data/raft/raft.db is corrupted: page 7: invalid type"},
		{"running again after a failure and started", pod(started(node(1, corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, exited(1, "Error", corrupted)))), false, ""},
		{"running again after a clean exit", pod(node(1, corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, exited(0, "Completed", ""))), false, ""},
		{"running, never restarted", pod(node(0, corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, nil)), false, ""},
		{"starting", pod(node(0, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}, nil)), false, ""},
		{"the node answers", pod(node(3, corev1.ContainerState{Waiting: backoff}, exited(1, "Error", corrupted))), true, ""},
		{"pod being deleted", deleting, false, ""},
		{"another container crash-loops", pod(corev1.ContainerStatus{Name: "sidecar", RestartCount: 3, State: corev1.ContainerState{Waiting: backoff}}), false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := memberFailure(tc.pod, tc.answers); got != tc.want {
				t.Errorf("memberFailure = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFailureTextIsBounded(t *testing.T) {
	long := "a" + strings.Repeat("é", maxFailureMessage) // two bytes each: the cut falls inside a rune
	got := failureText(long)
	if !strings.HasSuffix(got, "é…") || len(got) > maxFailureMessage+len("…") || !strings.HasPrefix(got, "aé") {
		t.Errorf("failureText of %d bytes = %d bytes ending %q", len(long), len(got), got[len(got)-5:])
	}
	// The longest failure still fits an event's note (1 kB) with a 63-character pod name.
	pod := corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
		Name: containerName, RestartCount: 9, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: crashLoopBackOff}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "ContainerCannotRun", Message: long}},
	}}}}
	if note := failureNote(strings.Repeat("p", 63), memberFailure(&pod, false)); len(note) > 1024 {
		t.Errorf("event note has %d bytes, more than the API's 1024", len(note))
	}
	if got := failureText(""); got != "" {
		t.Errorf("failureText(\"\") = %q", got)
	}
}

func TestNewlyFailed(t *testing.T) {
	m := func(name, state string) seqv1.MemberStatus { return seqv1.MemberStatus{Name: name, State: state} }
	cases := []struct {
		name      string
		prev, cur []seqv1.MemberStatus
		want      []string
	}{
		{"first failure", []seqv1.MemberStatus{m("c-0", "Leader"), m("c-1", "Unreachable")},
			[]seqv1.MemberStatus{m("c-0", "Leader"), m("c-1", seqv1.MemberStateFailed)}, []string{"c-1"}},
		{"still failed: no new event", []seqv1.MemberStatus{m("c-1", seqv1.MemberStateFailed)},
			[]seqv1.MemberStatus{m("c-1", seqv1.MemberStateFailed)}, nil},
		{"failed on first sight", nil, []seqv1.MemberStatus{m("c-2", seqv1.MemberStateFailed)}, []string{"c-2"}},
		{"failed again after recovering", []seqv1.MemberStatus{m("c-1", "Follower")},
			[]seqv1.MemberStatus{m("c-1", seqv1.MemberStateFailed)}, []string{"c-1"}},
		{"recovered", []seqv1.MemberStatus{m("c-1", seqv1.MemberStateFailed)}, []seqv1.MemberStatus{m("c-1", "Follower")}, nil},
		{"two at once, one already known", []seqv1.MemberStatus{m("c-0", seqv1.MemberStateFailed), m("c-1", "Follower")},
			[]seqv1.MemberStatus{m("c-0", seqv1.MemberStateFailed), m("c-1", seqv1.MemberStateFailed), m("c-2", seqv1.MemberStateFailed)}, []string{"c-1", "c-2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := newlyFailed(failedNames(tc.prev), failedNames(tc.cur)); !slices.Equal(got, tc.want) {
				t.Errorf("newlyFailed = %v, want %v", got, tc.want)
			}
		})
	}
}

// The memory answers for the cluster it was written for: a stale status in the cache does not bring a failure
// back as new, and a cluster recreated under the same name starts over from its status.
func TestFailureMemory(t *testing.T) {
	var f failureMemory
	c := &seqv1.SequencerCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c", UID: "uid-1"}}
	if _, known := f.swap(c, []string{"c-1"}); known {
		t.Fatal("an empty memory knows the cluster")
	}
	if prev, known := f.swap(c, []string{"c-1"}); !known || !slices.Equal(prev, []string{"c-1"}) {
		t.Errorf("swap = %v, %v; want [c-1], true", prev, known)
	}
	recreated := c.DeepCopy()
	recreated.UID = "uid-2"
	if _, known := f.swap(recreated, nil); known {
		t.Error("a recreated cluster was taken for the old one")
	}
	f.forget(types.NamespacedName{Namespace: "ns", Name: "c"})
	if _, known := f.swap(c, nil); known {
		t.Error("a forgotten cluster is still known")
	}
}
