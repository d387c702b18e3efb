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
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// The builders below are pure: they turn a SequencerCluster into the objects it should own. The ensure step
// applies them with server-side apply, so an edited or deleted object comes back as the spec says.

// pdbMinAvailable is the smallest number of pods that keeps a Raft quorum of replicas voters: a voluntary
// disruption (a drain, an eviction) may never take the cluster below it. One replica allows no disruption.
func pdbMinAvailable(replicas int32) int32 {
	if replicas < 1 {
		return 0
	}
	return replicas/2 + 1
}

func buildConfigMap(c *seqv1.SequencerCluster, bootstrapped bool) *corev1.ConfigMap {
	state := initialStateNew
	if bootstrapped {
		state = initialStateExisting
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: configMapName(c), Namespace: c.Namespace, Labels: objectLabels(c)},
		Data: map[string]string{
			configKeyInitialState: state,
			configKeyBootstrapID:  podName(c, 0),
		},
	}
}

func buildPeerService(c *seqv1.SequencerCluster) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: peerServiceName(c), Namespace: c.Namespace, Labels: objectLabels(c)},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			// Raft needs every member's DNS name before the member is ready: a joining node is not ready
			// until it caught up, and it cannot catch up if its peers cannot resolve it.
			PublishNotReadyAddresses: true,
			Selector:                 selectorLabels(c),
			Ports: []corev1.ServicePort{
				{Name: httpPortName, Port: httpPort, TargetPort: intstr.FromString(httpPortName), Protocol: corev1.ProtocolTCP},
				{Name: raftPortName, Port: raftPort, TargetPort: intstr.FromString(raftPortName), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

func buildClientService(c *seqv1.SequencerCluster) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: clientServiceName(c), Namespace: c.Namespace, Labels: objectLabels(c)},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selectorLabels(c),
			Ports: []corev1.ServicePort{
				{Name: httpPortName, Port: httpPort, TargetPort: intstr.FromString(httpPortName), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

func buildLeaderService(c *seqv1.SequencerCluster) *corev1.Service {
	sel := selectorLabels(c)
	sel[seqv1.LabelRole] = seqv1.RoleLeader
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: leaderServiceName(c), Namespace: c.Namespace, Labels: objectLabels(c)},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: sel,
			Ports: []corev1.ServicePort{
				{Name: httpPortName, Port: httpPort, TargetPort: intstr.FromString(httpPortName), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

func buildPDB(c *seqv1.SequencerCluster) *policyv1.PodDisruptionBudget {
	minAvailable := intstr.FromInt32(pdbMinAvailable(c.DesiredReplicas()))
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: metav1.ObjectMeta{Name: pdbName(c), Namespace: c.Namespace, Labels: objectLabels(c)},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &minAvailable,
			Selector:     &metav1.LabelSelector{MatchLabels: selectorLabels(c)},
		},
	}
}

// OperatorPods identifies the operator's own pods, which a cluster's NetworkPolicy lets reach the node API.
type OperatorPods struct {
	// Namespace is the operator's namespace; empty admits pods with Labels in every namespace.
	Namespace string
	// Labels are carried by every operator pod (and, in Namespace, by no pod that should not reach the nodes).
	// Without labels no operator peer is admitted: an empty selector would admit every pod.
	Labels map[string]string
}

// peer is the NetworkPolicy peer of the operator's pods.
func (o OperatorPods) peer() networkingv1.NetworkPolicyPeer {
	ns := &metav1.LabelSelector{}
	if o.Namespace != "" {
		// The API server labels every namespace with its own name.
		ns.MatchLabels = map[string]string{corev1.LabelMetadataName: o.Namespace}
	}
	return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: maps.Clone(o.Labels)}, NamespaceSelector: ns}
}

// networkPolicyName is the NetworkPolicy of a cluster with spec.networkPolicy.enabled.
func networkPolicyName(c *seqv1.SequencerCluster) string { return c.Name + "-nodes" }

// networkPolicyEnabled reports whether the cluster asks for its NetworkPolicy.
func networkPolicyEnabled(c *seqv1.SequencerCluster) bool {
	return c.Spec.NetworkPolicy != nil && c.Spec.NetworkPolicy.Enabled
}

// buildNetworkPolicy admits, to the cluster's pods, only Raft traffic from the cluster's own pods, and node API
// traffic from the cluster's own pods (followers forward to the leader), from the operator and from
// spec.networkPolicy.apiClients. It restricts ingress only: what the nodes dial (peers, DNS) is left to the
// cluster's own policies.
func buildNetworkPolicy(c *seqv1.SequencerCluster, operator OperatorPods) *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := func(p int32) []networkingv1.NetworkPolicyPort {
		return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(p))}}
	}
	members := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: selectorLabels(c)}}
	apiPeers := []networkingv1.NetworkPolicyPeer{members}
	if len(operator.Labels) > 0 {
		apiPeers = append(apiPeers, operator.peer())
	}
	if np := c.Spec.NetworkPolicy; np != nil {
		for _, p := range np.APIClients {
			apiPeers = append(apiPeers, *p.DeepCopy())
		}
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: networkPolicyName(c), Namespace: c.Namespace, Labels: objectLabels(c)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: selectorLabels(c)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: port(raftPort), From: []networkingv1.NetworkPolicyPeer{members}},
				{Ports: port(httpPort), From: apiPeers},
			},
		},
	}
}

// nodeArgs is the node command line. The pod name comes in through $(POD_NAME), expanded by the kubelet.
func nodeArgs(c *seqv1.SequencerCluster) []string {
	r := c.Spec.Raft
	args := []string{
		"run",
		"--id=$(POD_NAME)",
		"--chain-id=" + c.Spec.ChainID,
		"--data-dir=" + dataMountPath,
		fmt.Sprintf("--raft-addr=0.0.0.0:%d", raftPort),
		fmt.Sprintf("--raft-advertise=$(POD_NAME).%s:%d", peerDomain(c), raftPort),
		fmt.Sprintf("--http-addr=0.0.0.0:%d", httpPort),
		"--bootstrap-id=" + podName(c, 0),
		"--api-token-file=" + tokenMountPath + "/" + tokenKey,
		"--signing-key-file=" + keyMountPath + "/" + signingKeyKey,
		// Present only on the pod a quorum-loss recovery targets; the node applies it once.
		"--recovery-file=" + recoveryMountPath + "/$(POD_NAME).json",
		// A node that refuses to start says why there; the kubelet copies it into the pod's status.
		"--termination-message-path=" + corev1.TerminationMessagePathDefault,
	}
	for _, f := range []struct{ flag, value string }{
		{"--block-time", c.Spec.BlockTime},
		{"--heartbeat-timeout", r.HeartbeatTimeout},
		{"--election-timeout", r.ElectionTimeout},
		{"--leader-lease-timeout", r.LeaderLeaseTimeout},
		{"--commit-timeout", r.CommitTimeout},
		{"--log-level", c.Spec.LogLevel},
	} {
		if f.value != "" {
			args = append(args, f.flag+"="+f.value)
		}
	}
	if tlsSecretName(c) != "" {
		args = append(args,
			"--tls-cert-file="+tlsMountPath+"/tls.crt",
			"--tls-key-file="+tlsMountPath+"/tls.key",
			"--tls-ca-file="+tlsMountPath+"/ca.crt")
	}
	return append(args, c.Spec.ExtraArgs...)
}

func defaultAffinity(c *seqv1.SequencerCluster) *corev1.Affinity {
	return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 100,
			PodAffinityTerm: corev1.PodAffinityTerm{
				TopologyKey:   corev1.LabelHostname,
				LabelSelector: &metav1.LabelSelector{MatchLabels: selectorLabels(c)},
			},
		}},
	}}
}

// buildPodTemplate is the node pod template, annotated with its own hash so the rollout can tell updated
// pods from outdated ones without relying on the StatefulSet controller's revisions.
func buildPodTemplate(c *seqv1.SequencerCluster) corev1.PodTemplateSpec {
	labels := map[string]string{}
	annotations := map[string]string{}
	extras := c.Spec.PodTemplate
	if extras == nil {
		extras = &seqv1.PodTemplateExtras{}
	}
	maps.Copy(labels, extras.Labels)
	maps.Copy(annotations, extras.Annotations)
	maps.Copy(labels, selectorLabels(c))

	affinity := c.Spec.Affinity
	if affinity == nil {
		affinity = defaultAffinity(c)
	}
	env := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "SEQ_INITIAL_CLUSTER_STATE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: configMapName(c)},
			Key:                  configKeyInitialState,
		}}},
	}
	env = append(env, c.Spec.Env...)

	mounts := []corev1.VolumeMount{
		{Name: dataVolumeName, MountPath: dataMountPath},
		{Name: "api-token", MountPath: tokenMountPath, ReadOnly: true},
		{Name: "signing-key", MountPath: keyMountPath, ReadOnly: true},
		{Name: "tmp", MountPath: "/tmp"},
		{Name: "recovery", MountPath: recoveryMountPath, ReadOnly: true},
	}
	volumes := []corev1.Volume{
		{Name: "api-token", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: tokenSecretName(c), DefaultMode: ptr.To[int32](0o440)}}},
		{Name: "signing-key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: signingKeySecretName(c), DefaultMode: ptr.To[int32](0o440),
			Items: []corev1.KeyToPath{{Key: signingKeyKey, Path: signingKeyKey}}}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "recovery", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: recoveryConfigMapName(c)}, Optional: ptr.To(true)}}},
	}
	if s := tlsSecretName(c); s != "" {
		mounts = append(mounts, corev1.VolumeMount{Name: "raft-tls", MountPath: tlsMountPath, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: "raft-tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: s, DefaultMode: ptr.To[int32](0o440)}}})
	}

	// With TLS the node serves its API, probes included, over HTTPS only. Without it the scheme stays unset
	// (the API server's default, HTTP), so the template hash of existing clusters does not change.
	var probeScheme corev1.URIScheme
	if tlsSecretName(c) != "" {
		probeScheme = corev1.URISchemeHTTPS
	}
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString(httpPortName), Scheme: probeScheme}},
			PeriodSeconds:    period,
			TimeoutSeconds:   2,
			FailureThreshold: failures,
		}
	}

	t := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			// A leader hands leadership over on SIGTERM before it stops; give it time.
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			// Nodes never talk to the Kubernetes API.
			AutomountServiceAccountToken: ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](65532),
				RunAsGroup:     ptr.To[int64](65532),
				FSGroup:        ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			NodeSelector:              c.Spec.NodeSelector,
			Tolerations:               c.Spec.Tolerations,
			Affinity:                  affinity,
			PriorityClassName:         extras.PriorityClassName,
			ServiceAccountName:        extras.ServiceAccountName,
			ImagePullSecrets:          extras.ImagePullSecrets,
			TopologySpreadConstraints: extras.TopologySpreadConstraints,
			Containers: []corev1.Container{{
				Name:            containerName,
				Image:           c.Spec.Image,
				ImagePullPolicy: c.Spec.ImagePullPolicy,
				Args:            nodeArgs(c),
				Env:             env,
				Ports: []corev1.ContainerPort{
					{Name: httpPortName, ContainerPort: httpPort, Protocol: corev1.ProtocolTCP},
					{Name: raftPortName, ContainerPort: raftPort, Protocol: corev1.ProtocolTCP},
				},
				Resources:      c.Spec.Resources,
				VolumeMounts:   mounts,
				StartupProbe:   probe("/healthz", 2, 60),
				LivenessProbe:  probe("/healthz", 10, 3),
				ReadinessProbe: probe("/readyz", 2, 2),
				// The node writes its fatal error to the termination message file; a crash before that
				// leaves the log's last lines there instead.
				TerminationMessagePath:   corev1.TerminationMessagePathDefault,
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				SecurityContext: &corev1.SecurityContext{
					RunAsNonRoot:             ptr.To(true),
					ReadOnlyRootFilesystem:   ptr.To(true),
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
			Volumes: volumes,
		},
	}
	if extras.TerminationGracePeriodSeconds != nil {
		t.Spec.TerminationGracePeriodSeconds = extras.TerminationGracePeriodSeconds
	}
	t.Annotations[seqv1.AnnotationTemplateHash] = templateHash(t)
	return t
}

// templateHash is a short, stable hash of a pod template (without its own hash annotation).
func templateHash(t corev1.PodTemplateSpec) string {
	t = *t.DeepCopy()
	delete(t.Annotations, seqv1.AnnotationTemplateHash)
	data, err := json.Marshal(t)
	if err != nil {
		// A PodTemplateSpec always marshals; reaching this is a programming error.
		panic(fmt.Sprintf("cannot hash pod template: %v", err))
	}
	h := fnv.New64a()
	_, _ = h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

func buildStatefulSet(c *seqv1.SequencerCluster, replicas int32) *appsv1.StatefulSet {
	retention := appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	if c.Spec.Storage.RetentionPolicy == seqv1.PVCDelete {
		retention = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	}
	size := resource.MustParse("10Gi")
	if c.Spec.Storage.Size != nil {
		size = *c.Spec.Storage.Size
	}
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: statefulSetName(c), Namespace: c.Namespace, Labels: objectLabels(c)},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			ServiceName:         peerServiceName(c),
			PodManagementPolicy: appsv1.ParallelPodManagement,
			// The operator replaces pods itself, followers first and the leader last.
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
			Selector:       &metav1.LabelSelector{MatchLabels: selectorLabels(c)},
			Template:       buildPodTemplate(c),
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: retention,
				WhenScaled:  retention,
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: dataVolumeName, Labels: selectorLabels(c)},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: c.Spec.Storage.StorageClassName,
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
				},
			}},
		},
	}
}
