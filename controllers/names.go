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
	"strconv"
	"strings"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// Ports and paths of a node pod, fixed by the node's contract.
const (
	httpPort       = 8080
	raftPort       = 7000
	httpPortName   = "http"
	raftPortName   = "raft"
	dataVolumeName = "data"
	dataMountPath  = "/data"
	tokenMountPath = "/etc/seqops/api-token"
	keyMountPath   = "/etc/seqops/signing-key"
	tlsMountPath   = "/etc/seqops/tls"
	// recoveryMountPath holds <pod>.json recovery files from the recovery ConfigMap, when one exists.
	recoveryMountPath = "/etc/seqops/recovery"
	tokenKey          = "token"
	signingKeyKey     = "signing.key"
	containerName     = "node"

	// configKeyInitialState is the ConfigMap key read by the pods as SEQ_INITIAL_CLUSTER_STATE. It flips from
	// "new" to "existing" once, when the operator first sees a leader, and never back: a wiped pod 0 then
	// comes back empty instead of bootstrapping a second cluster.
	configKeyInitialState = "initial-cluster-state"
	configKeyBootstrapID  = "bootstrap-id"
	initialStateNew       = "new"
	initialStateExisting  = "existing"

	fieldOwner = "sequencer-operator"
)

// Names of the objects a SequencerCluster owns.
func statefulSetName(c *seqv1.SequencerCluster) string   { return c.Name }
func peerServiceName(c *seqv1.SequencerCluster) string   { return c.Name + "-peers" }
func clientServiceName(c *seqv1.SequencerCluster) string { return c.Name }
func leaderServiceName(c *seqv1.SequencerCluster) string { return c.Name + "-leader" }
func pdbName(c *seqv1.SequencerCluster) string           { return c.Name }
func configMapName(c *seqv1.SequencerCluster) string     { return c.Name + "-config" }

// recoveryConfigMapName exists only while a quorum-loss recovery runs.
func recoveryConfigMapName(c *seqv1.SequencerCluster) string { return c.Name + "-recovery" }
func tokenSecretName(c *seqv1.SequencerCluster) string       { return c.Name + "-api-token" }
func certificateName(c *seqv1.SequencerCluster) string       { return c.Name + "-raft-tls" }

// signingKeySecretName is the Secret holding the signing key: the user's, or the one the operator generates.
func signingKeySecretName(c *seqv1.SequencerCluster) string {
	if c.Spec.SigningKey != nil && c.Spec.SigningKey.SecretRef != nil {
		return c.Spec.SigningKey.SecretRef.Name
	}
	return c.Name + "-signing-key"
}

// tlsSecretName is the Secret with the Raft transport certificate, or "" without TLS.
func tlsSecretName(c *seqv1.SequencerCluster) string {
	switch {
	case c.Spec.TLS == nil || !c.Spec.TLS.Enabled:
		return ""
	case c.Spec.TLS.SecretName != "":
		return c.Spec.TLS.SecretName
	default:
		return certificateName(c)
	}
}

func podName(c *seqv1.SequencerCluster, ordinal int) string {
	return c.Name + "-" + strconv.Itoa(ordinal)
}

func pvcName(c *seqv1.SequencerCluster, ordinal int) string {
	return dataVolumeName + "-" + podName(c, ordinal)
}

// ordinalOf returns the ordinal of a pod (or Raft member ID) of cluster c, or -1 when name is not one of its pods.
func ordinalOf(c *seqv1.SequencerCluster, name string) int {
	return parseOrdinal(c.Name, name)
}

// parseOrdinal returns the ordinal of pod name of the StatefulSet named sts, or -1.
func parseOrdinal(sts, name string) int {
	rest, ok := strings.CutPrefix(name, sts+"-")
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// peerDomain is the DNS domain of the pods behind the headless peer Service.
func peerDomain(c *seqv1.SequencerCluster) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", peerServiceName(c), c.Namespace)
}

// raftAddress is the stable Raft address of a pod: a DNS name, never a pod IP, so it survives rescheduling.
func raftAddress(c *seqv1.SequencerCluster, pod string) string {
	return fmt.Sprintf("%s.%s:%d", pod, peerDomain(c), raftPort)
}

// DefaultNodeURL is the node API address of a pod inside the Kubernetes cluster.
func DefaultNodeURL(c *seqv1.SequencerCluster, pod string) string {
	scheme := "http"
	if tlsSecretName(c) != "" {
		scheme = "https" // the nodes serve their API with the cluster's certificate
	}
	return fmt.Sprintf("%s://%s.%s:%d", scheme, pod, peerDomain(c), httpPort)
}

// selectorLabels select the pods of a cluster.
func selectorLabels(c *seqv1.SequencerCluster) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "sequencer-node",
		"app.kubernetes.io/instance": c.Name,
		seqv1.LabelCluster:           c.Name,
	}
}

// objectLabels label every object the operator creates for a cluster.
func objectLabels(c *seqv1.SequencerCluster) map[string]string {
	l := selectorLabels(c)
	l["app.kubernetes.io/managed-by"] = "sequencer-operator"
	return l
}
