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
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// execute carries out the planned step. The operator decides; the nodes act: membership goes through the
// leader's API with the configuration index it planned from, so a configuration that changed since is refused
// (409) rather than acted on.
func (r *SequencerClusterReconciler) execute(ctx context.Context, s *scope) error {
	st := s.step
	if st.Kind == stepWait {
		return nil
	}
	c := s.cluster
	logger := log.FromContext(ctx)
	op := string(st.Kind)
	if err := r.failpoint(ctx, "before-"+op); err != nil {
		return err
	}
	var err error
	switch st.Kind {
	case stepMarkBootstrapped:
		s.bootstrapped = true
		s.input.Bootstrapped = true
		if err = r.apply(ctx, c, buildConfigMap(c, true)); err == nil {
			r.event(c, corev1.EventTypeNormal, "Bootstrapped", "Bootstrap",
				"The Raft cluster exists; pods now start with initial-cluster-state=existing and never bootstrap again")
		}
	case stepAddMember:
		_, err = r.nodeClient(s, s.input.Leader).AddMember(ctx, nodeapi.AddMemberRequest{
			ID: st.Member, Address: raftAddress(c, st.Member), ConfigIndex: s.input.Config.Index,
		})
		if err == nil {
			r.event(c, corev1.EventTypeNormal, "MemberAdded", "AddMember", "Added %s as a non-voter; autopilot promotes it once it caught up", st.Member)
		}
	case stepRemoveMember:
		_, err = r.nodeClient(s, s.input.Leader).RemoveMember(ctx, st.Member, s.input.Config.Index)
		if err == nil {
			r.event(c, corev1.EventTypeNormal, "MemberRemoved", "RemoveMember", "Removed %s from the Raft configuration: %s", st.Member, st.Message)
		}
	case stepTransferLeadership:
		_, err = r.nodeClient(s, s.input.Leader).TransferLeadership(ctx, st.Target)
		if err == nil {
			r.event(c, corev1.EventTypeNormal, "LeadershipTransferred", "TransferLeadership", "Asked %s to hand leadership to %s: %s", st.Member, st.Target, st.Message)
		}
	case stepScaleStatefulSet:
		from := stsReplicas(s.sts)
		if err = r.apply(ctx, c, buildStatefulSet(c, st.Replicas)); err == nil {
			r.event(c, corev1.EventTypeNormal, "Scaled", "ScaleStatefulSet", "Scaled StatefulSet %s from %d to %d", statefulSetName(c), from, st.Replicas)
		}
	case stepDeleteVolume:
		pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: dataVolumeName + "-" + st.Member}}
		if err = r.Client.Delete(ctx, pvc); err == nil || apierrors.IsNotFound(err) {
			err = nil
			r.event(c, corev1.EventTypeNormal, "VolumeDeleted", "DeleteVolume", "Deleted volume %s: %s", pvc.Name, st.Message)
		}
	case stepReplacePod:
		pod := s.pods[st.Member]
		err = r.Client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID})
		if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			err = nil
			r.event(c, corev1.EventTypeNormal, "PodReplaced", "RollingUpdate", "Deleted %s so it comes back with the new template", st.Member)
		}
	case stepFinishSwitchover:
		if err = r.clearTransferAnnotation(ctx, c); err == nil {
			r.event(c, corev1.EventTypeNormal, "SwitchoverDone", "Switchover", "%s leads as requested", st.Target)
		}
	case stepStartRecovery:
		err = r.startRecovery(ctx, s)
		if err == nil {
			r.event(c, corev1.EventTypeWarning, "RecoveryStarted", "Recovery", "%s", st.Message)
		}
	case stepFinishRecovery:
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: recoveryConfigMapName(c)}}
		if err = r.Client.Delete(ctx, cm); err == nil || apierrors.IsNotFound(err) {
			if err = r.clearAnnotation(ctx, c, seqv1.AnnotationRecoverFrom); err == nil {
				r.event(c, corev1.EventTypeNormal, "Recovered", "Recovery", "%s; the other members are added back as non-voters", st.Message)
			}
		}
	case stepRejectRecovery:
		s.rejection, s.rejectionReason = st.Message, seqv1.ReasonRecoveryRejected
		if err = r.clearAnnotation(ctx, c, seqv1.AnnotationRecoverFrom); err == nil {
			r.event(c, corev1.EventTypeWarning, "RecoveryRejected", "Recovery", "%s", st.Message)
		}
	case stepRejectSwitchover:
		s.rejection = st.Message
		if err = r.clearTransferAnnotation(ctx, c); err == nil {
			r.event(c, corev1.EventTypeWarning, "SwitchoverRejected", "Switchover", "%s", st.Message)
		}
	}
	if err != nil {
		membershipOperationErrors.WithLabelValues(c.Namespace, c.Name, op).Inc()
		if nodeapi.IsConflict(err) {
			// The configuration moved since this pass read it; the next pass plans again from the new one.
			logger.Info("Membership change raced with another change; planning again", "step", op, "member", st.Member)
			return nil
		}
		r.event(c, corev1.EventTypeWarning, "StepFailed", op, "%s %s failed: %v", op, st.Member, err)
		return fmt.Errorf("cannot %s %s: %w", op, st.Member, err)
	}
	membershipOperations.WithLabelValues(c.Namespace, c.Name, op).Inc()
	return r.failpoint(ctx, "after-"+op)
}

// failpoint lets a test crash the operator between two steps.
func (r *SequencerClusterReconciler) failpoint(ctx context.Context, name string) error {
	if r.Failpoint == nil {
		return nil
	}
	if err := r.Failpoint(name); err != nil {
		log.FromContext(ctx).Info("Failpoint hit: stopping the pass here", "failpoint", name, "error", err)
		return fmt.Errorf("%w %s: %w", errFailpoint, name, err)
	}
	return nil
}

// startRecovery hands the target its recovery file (a Raft configuration naming only itself) through the
// recovery ConfigMap, mounted in every node pod, and restarts it so it applies the file.
func (r *SequencerClusterReconciler) startRecovery(ctx context.Context, s *scope) error {
	c, t := s.cluster, s.step.Target
	peers, err := json.Marshal([]map[string]any{{"id": t, "address": raftAddress(c, t), "non_voter": false}})
	if err != nil {
		return fmt.Errorf("cannot encode the recovery configuration: %w", err)
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: recoveryConfigMapName(c), Namespace: c.Namespace, Labels: objectLabels(c)},
		Data:       map[string]string{t + ".json": string(peers)},
	}
	if err := r.apply(ctx, c, cm); err != nil {
		return err
	}
	if pod := s.pods[t]; pod != nil {
		if err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("cannot restart %s: %w", t, err)
		}
	}
	return nil
}

// clearTransferAnnotation removes the switchover request; done or refused, it is not acted on again.
func (r *SequencerClusterReconciler) clearTransferAnnotation(ctx context.Context, c *seqv1.SequencerCluster) error {
	return r.clearAnnotation(ctx, c, seqv1.AnnotationTransferLeaderTo)
}

// clearAnnotation removes a request annotation; done or refused, it is not acted on again.
func (r *SequencerClusterReconciler) clearAnnotation(ctx context.Context, c *seqv1.SequencerCluster, key string) error {
	if _, ok := c.Annotations[key]; !ok {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]any{key: nil},
	}})
	if err != nil {
		return fmt.Errorf("cannot build annotation patch: %w", err)
	}
	obj := &seqv1.SequencerCluster{}
	obj.Name, obj.Namespace = c.Name, c.Namespace
	if err := r.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("cannot remove annotation %s: %w", key, err)
	}
	return nil
}
