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
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// A node that refuses to start (damaged data on disk, an invalid flag) exits non-zero with its reason as the
// container's termination message, and the kubelet restarts it with back-off. The operator shows such a member
// as Failed, with that reason, in the status, the Degraded condition and one MemberFailed event. It changes no
// membership because of it: replacing the member's data is the runbook's human decision.

// crashLoopBackOff is the kubelet's waiting reason for a container it restarts with back-off.
const crashLoopBackOff = "CrashLoopBackOff"

// killedBySignal is the lowest exit code of a process ended by a signal (128 + the signal number).
const killedBySignal = 128

// repeatedKills is the restart count from which a container killed by a signal again is a failed member.
const repeatedKills = 3

// maxFailureMessage bounds the termination message quoted in conditions and events: an event's note must stay
// within the API's 1 kB with the pod name and the rest of the sentence around it.
const maxFailureMessage = 512

// memberFailure says why a member's node failed, from its pod and whether the node answered this pass: ""
// while the node answers, has started, or has not been restarted after an error, and after a kill by a signal
// until the kills repeat (a SIGKILLed leader is back within a second; its exit is no failure). A failure is the node
// container in CrashLoopBackOff, or, after a restart that followed an error, ended non-zero again or running
// but not started yet: a crash loop passes through all three, and the member must not flicker out of Failed
// (and into a new event) whenever a pass sees the short run between two back-offs.
func memberFailure(pod *corev1.Pod, answers bool) string {
	if pod == nil || answers || !pod.DeletionTimestamp.IsZero() {
		return ""
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != containerName {
			continue
		}
		waiting, term, last := cs.State.Waiting, cs.State.Terminated, cs.LastTerminationState.Terminated
		started := cs.Started != nil && *cs.Started
		failedBefore := cs.RestartCount > 0 && last != nil && last.ExitCode != 0
		switch {
		case waiting != nil && waiting.Reason == crashLoopBackOff:
			term = last
		case term != nil && term.ExitCode != 0 && cs.RestartCount > 0:
		case cs.State.Running != nil && !started && failedBefore:
			term = last
		default:
			return ""
		}
		if term != nil && term.ExitCode >= killedBySignal && cs.RestartCount < repeatedKills {
			// Killed by a signal (SIGKILL, the OOM killer): a node that refuses to start exits with an error of its
			// own instead. One kill is an incident the restart repairs, not a failed member; kills that keep coming
			// are a crash loop.
			return ""
		}
		if term == nil {
			// The container never ran (the kubelet could not start it); its waiting message says why.
			return "cannot start: " + failureText(waiting.Message)
		}
		out := fmt.Sprintf("exited with code %d", term.ExitCode)
		if term.Reason != "" && term.Reason != "Error" {
			out += " (" + term.Reason + ")"
		}
		if msg := failureText(term.Message); msg != "" {
			out += ": " + msg
		}
		return out
	}
	return ""
}

// failureText is the line of a termination message that says why: its last non-empty line (the node writes
// one line; a log tail ends with the fatal error), cut to maxFailureMessage bytes.
func failureText(msg string) string {
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	if len(line) > maxFailureMessage {
		line = strings.ToValidUTF8(line[:maxFailureMessage], "") + "…"
	}
	return line
}

// failedNames are the members whose state is Failed.
func failedNames(members []seqv1.MemberStatus) []string {
	var out []string
	for _, m := range members {
		if m.State == seqv1.MemberStateFailed {
			out = append(out, m.Name)
		}
	}
	return out
}

// newlyFailed lists the members of cur that are not in prev, in cur's order: each failure gets one event, not
// one per pass.
func newlyFailed(prev, cur []string) []string {
	var out []string
	for _, name := range cur {
		if !slices.Contains(prev, name) {
			out = append(out, name)
		}
	}
	return out
}

// failureMemory holds, per cluster, the members this process last found Failed. A pass may read the cluster
// from the cache before this process's own status write reached it; judged by that stale status, a member
// would become Failed twice and get two events. After a restart the status (by then current) is used.
type failureMemory struct {
	mu sync.Mutex
	m  map[types.NamespacedName]failedSet
}

type failedSet struct {
	uid     types.UID
	members []string
}

// swap records the Failed members of cluster c and returns the ones recorded before, if any were for c.
func (f *failureMemory) swap(c *seqv1.SequencerCluster, members []string) ([]string, bool) {
	key := types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[types.NamespacedName]failedSet{}
	}
	prev, ok := f.m[key]
	f.m[key] = failedSet{uid: c.UID, members: members}
	return prev.members, ok && prev.uid == c.UID
}

func (f *failureMemory) forget(key types.NamespacedName) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, key)
}

// recordMemberFailures emits a MemberFailed warning for every member that failed since the last pass.
func (r *SequencerClusterReconciler) recordMemberFailures(c *seqv1.SequencerCluster, st seqv1.SequencerClusterStatus, in planInput) {
	cur := failedNames(st.Members)
	prev, known := r.failures.swap(c, cur)
	if !known {
		prev = failedNames(c.Status.Members)
	}
	for _, name := range newlyFailed(prev, cur) {
		r.event(c, corev1.EventTypeWarning, seqv1.ReasonMemberFailed, "ObserveMember", "%s", failureNote(name, in.Pods[name].Failure))
	}
}

// failureNote is the MemberFailed event's note.
func failureNote(member, failure string) string {
	return fmt.Sprintf("%s failed: %s; the operator does not replace it (docs/runbook.md: a member is down or crash-looping)", member, failure)
}
