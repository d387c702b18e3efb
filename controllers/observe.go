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
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// nodeStatusTimeout bounds each /raft read of a pass: an unreachable node must not stall the others.
const nodeStatusTimeout = 2 * time.Second

// nodeStatusGrace is how long a pass still waits for the other pods once a leader and a majority answered.
const nodeStatusGrace = 300 * time.Millisecond

// observe reads the pods, their volumes and every pod's /raft document, and builds the planner's input.
// The node documents are read fresh each pass rather than taken from the watcher: a membership decision must
// rest on the configuration as it is now (and the configIndex compare-and-set catches what changed since).
func (r *SequencerClusterReconciler) observe(ctx context.Context, s *scope) error {
	c := s.cluster
	podList := &corev1.PodList{}
	if err := r.Client.List(ctx, podList, client.InNamespace(c.Namespace), client.MatchingLabels{seqv1.LabelCluster: c.Name}); err != nil {
		return fmt.Errorf("cannot list pods: %w", err)
	}
	s.pods = map[string]*corev1.Pod{}
	for i := range podList.Items {
		if p := &podList.Items[i]; ordinalOf(c, p.Name) >= 0 {
			s.pods[p.Name] = p
		}
	}
	pvcList := &corev1.PersistentVolumeClaimList{}
	if err := r.Client.List(ctx, pvcList, client.InNamespace(c.Namespace), client.MatchingLabels{seqv1.LabelCluster: c.Name}); err != nil {
		return fmt.Errorf("cannot list volumes: %w", err)
	}
	var volumes []int
	for _, pvc := range pvcList.Items {
		if name, ok := strings.CutPrefix(pvc.Name, dataVolumeName+"-"); ok && pvc.DeletionTimestamp.IsZero() {
			if ord := ordinalOf(c, name); ord >= 0 {
				volumes = append(volumes, ord)
			}
		}
	}

	nodes := r.readNodes(ctx, s)
	wantHash := buildPodTemplate(c).Annotations[seqv1.AnnotationTemplateHash]
	views := map[string]podView{}
	targets := map[string]string{}
	for name, pod := range s.pods {
		views[name] = podView{
			Exists:      true,
			Ready:       podReady(pod),
			Terminating: !pod.DeletionTimestamp.IsZero(),
			Updated:     pod.Annotations[seqv1.AnnotationTemplateHash] == wantHash,
			Node:        nodes[name],
			Failure:     memberFailure(pod, nodes[name] != nil),
		}
		targets[name] = r.nodeClient(s, name).BaseURL()
	}
	if r.Dialer != nil {
		r.Dialer.Learn(types.NamespacedName{Namespace: c.Namespace, Name: c.Name}, targets, s.pods)
	}
	r.Watcher.Sync(types.NamespacedName{Namespace: c.Namespace, Name: c.Name}, targets, s.nodeHTTP)

	in := planInput{
		Name:           c.Name,
		Desired:        int(c.DesiredReplicas()),
		StsExists:      s.sts != nil,
		StsReplicas:    int(stsReplicas(s.sts)),
		Bootstrapped:   s.bootstrapped,
		Paused:         c.Spec.Paused,
		Pods:           views,
		TransferTarget: c.Annotations[seqv1.AnnotationTransferLeaderTo],
		RecoverFrom:    c.Annotations[seqv1.AnnotationRecoverFrom],
		RecoveryFor:    s.recoveryFor,
		DeleteVolumes:  c.Spec.Storage.RetentionPolicy == seqv1.PVCDelete,
		Volumes:        volumes,
	}
	// The leader is the node that says it leads; if two do (a deposed leader not yet told), the higher term wins.
	var leader *nodeapi.Status
	for name, st := range nodes {
		if st.State == nodeapi.StateLeader && (leader == nil || st.Term > leader.Term) {
			leader, in.Leader = st, name
		}
	}
	if leader != nil {
		in.Config = leader.Configuration
		in.CommitIndex = leader.CommitIndex
		in.Health = leader.Autopilot
	}
	s.input = in
	return nil
}

// readNodes reads /raft of every pod in parallel; a pod that does not answer is left out. It waits up to
// nodeStatusTimeout for every pod, but once a leader and a majority of the pods answered it waits only
// nodeStatusGrace more: a node cut off the network (its connections hang rather than fail) must not hold
// a leader change back from the status for seconds.
func (r *SequencerClusterReconciler) readNodes(ctx context.Context, s *scope) map[string]*nodeapi.Status {
	ctx, cancel := context.WithTimeout(ctx, nodeStatusTimeout)
	defer cancel()
	type answer struct {
		name string
		st   *nodeapi.Status
	}
	answers := make(chan answer, len(s.pods))
	for name := range s.pods {
		cl := r.nodeClient(s, name)
		go func() {
			st, err := cl.Status(ctx)
			if err != nil {
				st = nil
			}
			answers <- answer{name, st}
		}()
	}
	out := map[string]*nodeapi.Status{}
	var grace <-chan time.Time
	for pending := len(s.pods); pending > 0; pending-- {
		select {
		case a := <-answers:
			if a.st != nil {
				out[a.name] = a.st
			}
		case <-grace:
			return out
		}
		if grace == nil && hasLeaderAndMajority(out, len(s.pods)) {
			t := time.NewTimer(nodeStatusGrace)
			defer t.Stop()
			grace = t.C
		}
	}
	return out
}

// hasLeaderAndMajority is true when more than half of n pods answered and one of them leads.
func hasLeaderAndMajority(answered map[string]*nodeapi.Status, n int) bool {
	if 2*len(answered) <= n {
		return false
	}
	for _, st := range answered {
		if st.State == nodeapi.StateLeader {
			return true
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
