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
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// apply server-side-applies obj as owned by c. Applying the whole desired object every pass repairs drift (an
// edited field is taken back, a deleted object is recreated) and is a no-op on the API server when nothing changed.
func (r *SequencerClusterReconciler) apply(ctx context.Context, c *seqv1.SequencerCluster, obj client.Object) error {
	if err := controllerutil.SetControllerReference(c, obj, r.Scheme); err != nil {
		return fmt.Errorf("cannot set owner of %T %s: %w", obj, obj.GetName(), err)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return fmt.Errorf("cannot convert %T %s: %w", obj, obj.GetName(), err)
	}
	delete(u, "status")
	unstructured.RemoveNestedField(u, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u, "spec", "template", "metadata", "creationTimestamp")
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: u}),
		client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("cannot apply %s %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
	}
	return nil
}

// reconcileResources ensures every owned object. The StatefulSet keeps its current replica count: only the
// membership planner changes it, one safe step at a time. While paused the StatefulSet is only created, never
// updated, so no pod picks up a new template.
func (r *SequencerClusterReconciler) reconcileResources(ctx context.Context, s *scope) error {
	c := s.cluster
	if err := r.ensureSecrets(ctx, s); err != nil {
		return err
	}
	if err := r.ensureCertificate(ctx, c); err != nil {
		return err
	}
	if err := r.apply(ctx, c, buildConfigMap(c, s.bootstrapped)); err != nil {
		return err
	}
	for _, svc := range []*corev1.Service{buildPeerService(c), buildClientService(c), buildLeaderService(c)} {
		if err := r.apply(ctx, c, svc); err != nil {
			return err
		}
	}
	if err := r.apply(ctx, c, buildPDB(c)); err != nil {
		return err
	}
	if err := r.ensureNetworkPolicy(ctx, c); err != nil {
		return err
	}
	waiting, err := r.readNodeTLS(ctx, s)
	if err != nil {
		return err
	}
	if waiting != "" {
		s.rejection, s.rejectionReason = waiting, seqv1.ReasonWaitingForTLSSecret
	}

	switch {
	case s.sts == nil && waiting != "":
		// Pods would hang in ContainerCreating without the Secret's volume; start them once it exists.
		log.FromContext(ctx).Info("Waiting for the TLS Secret before creating the StatefulSet", "reason", waiting)
		return nil
	case s.sts == nil:
		// A new cluster starts all its pods at once: pod 0 bootstraps, the others wait to be added.
		log.FromContext(ctx).Info("Creating StatefulSet", "replicas", c.DesiredReplicas())
		if err := r.apply(ctx, c, buildStatefulSet(c, c.DesiredReplicas())); err != nil {
			return err
		}
		r.event(c, corev1.EventTypeNormal, "Created", "CreateStatefulSet", "Created StatefulSet %s with %d replicas", statefulSetName(c), c.DesiredReplicas())
		return r.readStatefulSet(ctx, s)
	case c.Spec.Paused:
		return nil
	default:
		return r.apply(ctx, c, buildStatefulSet(c, stsReplicas(s.sts)))
	}
}

func stsReplicas(sts *appsv1.StatefulSet) int32 {
	if sts == nil || sts.Spec.Replicas == nil {
		return 0
	}
	return *sts.Spec.Replicas
}

// readStatefulSet reads the StatefulSet from the API server, not the cache: its replica count feeds the
// membership planner and must not be stale right after the planner changed it.
func (r *SequencerClusterReconciler) readStatefulSet(ctx context.Context, s *scope) error {
	sts := &appsv1.StatefulSet{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: s.cluster.Namespace, Name: statefulSetName(s.cluster)}, sts)
	switch {
	case apierrors.IsNotFound(err):
		s.sts = nil
		return nil
	case err != nil:
		return fmt.Errorf("cannot read StatefulSet: %w", err)
	}
	s.sts = sts
	return nil
}

// ensureSecrets creates the API token Secret and, with signingKey.generate, the signing key Secret. Their
// values are created once and never rewritten: the pods and the operator share them.
func (r *SequencerClusterReconciler) ensureSecrets(ctx context.Context, s *scope) error {
	c := s.cluster
	token, err := r.ensureSecret(ctx, c, tokenSecretName(c), tokenKey, func() ([]byte, error) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(b)), nil
	})
	if err != nil {
		return err
	}
	s.token = string(token)
	// The API server defaults signingKey to {generate: true}; nil only comes from objects built in code.
	if sk := c.Spec.SigningKey; sk != nil && (!sk.Generate || sk.SecretRef != nil) {
		return nil
	}
	_, err = r.ensureSecret(ctx, c, signingKeySecretName(c), signingKeyKey, generateSigningKey)
	return err
}

// generateSigningKey makes a new ed25519 key as PKCS#8 PEM, the node's format.
func generateSigningKey() ([]byte, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func (r *SequencerClusterReconciler) ensureSecret(ctx context.Context, c *seqv1.SequencerCluster, name, key string, gen func() ([]byte, error)) ([]byte, error) {
	sec := &corev1.Secret{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: name}, sec)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("cannot read Secret %s: %w", name, err)
	}
	if err == nil && len(sec.Data[key]) > 0 {
		// Repair labels and owner, keep the value.
		if metav1.IsControlledBy(sec, c) && sec.Labels[seqv1.LabelCluster] == c.Name {
			return sec.Data[key], nil
		}
		patch := client.MergeFrom(sec.DeepCopy())
		if sec.Labels == nil {
			sec.Labels = map[string]string{}
		}
		for k, v := range objectLabels(c) {
			sec.Labels[k] = v
		}
		if err := controllerutil.SetControllerReference(c, sec, r.Scheme); err != nil {
			return nil, fmt.Errorf("cannot own Secret %s: %w", name, err)
		}
		if err := r.Client.Patch(ctx, sec, patch); err != nil {
			return nil, fmt.Errorf("cannot label Secret %s: %w", name, err)
		}
		return sec.Data[key], nil
	}
	value, genErr := gen()
	if genErr != nil {
		return nil, fmt.Errorf("cannot generate %s for Secret %s: %w", key, name, genErr)
	}
	desired := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.Namespace, Labels: objectLabels(c)},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{key: value},
	}
	if err := controllerutil.SetControllerReference(c, desired, r.Scheme); err != nil {
		return nil, fmt.Errorf("cannot own Secret %s: %w", name, err)
	}
	if apierrors.IsNotFound(err) {
		log.FromContext(ctx).Info("Creating Secret", "secret", name)
		if err := r.Client.Create(ctx, desired); err != nil {
			return nil, fmt.Errorf("cannot create Secret %s: %w", name, err)
		}
		if key == signingKeyKey && c.Status.Bootstrapped {
			// A chain keeps its key: a new one means blocks signed by a key the members do not share yet.
			r.event(c, corev1.EventTypeWarning, "SigningKeyRegenerated", "CreateSecret",
				"Signing key Secret %s was missing and has been generated again; restore the old key if the chain must keep its proposer key", name)
		}
		return value, nil
	}
	patch := client.MergeFrom(sec.DeepCopy())
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	sec.Data[key] = value
	if err := r.Client.Patch(ctx, sec, patch); err != nil {
		return nil, fmt.Errorf("cannot fill Secret %s: %w", name, err)
	}
	return value, nil
}

// ensureCertificate requests the Raft transport certificate from cert-manager when tls.issuerRef is set.
func (r *SequencerClusterReconciler) ensureCertificate(ctx context.Context, c *seqv1.SequencerCluster) error {
	if c.Spec.TLS == nil || !c.Spec.TLS.Enabled || c.Spec.TLS.IssuerRef == nil {
		return nil
	}
	ref := c.Spec.TLS.IssuerRef
	var dnsNames []any
	for _, n := range certificateDNSNames(c) {
		dnsNames = append(dnsNames, n)
	}
	labels := map[string]any{}
	for k, v := range objectLabels(c) {
		labels[k] = v
	}
	cert := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert-manager.io/v1",
		"kind":       "Certificate",
		"metadata": map[string]any{
			"name":      certificateName(c),
			"namespace": c.Namespace,
		},
		"spec": map[string]any{
			"secretName": certificateName(c),
			// No commonName: it is limited to 64 bytes, which a long peer domain exceeds; SANs are what TLS checks.
			"dnsNames": dnsNames,
			// Every node is a TLS server (Raft, API) and a client of its peers.
			"usages":    []any{"digital signature", "key encipherment", "server auth", "client auth"},
			"issuerRef": map[string]any{"name": ref.Name, "kind": ref.Kind, "group": ref.Group},
			// Labelled like the operator's other objects, so the Secret is found with them.
			"secretTemplate": map[string]any{"labels": labels},
		},
	}}
	cert.SetLabels(objectLabels(c))
	if err := controllerutil.SetControllerReference(c, cert, r.Scheme); err != nil {
		return fmt.Errorf("cannot own Certificate: %w", err)
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(cert), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("cannot apply cert-manager Certificate %s (is cert-manager installed?): %w", certificateName(c), err)
	}
	return nil
}

// certificateDNSNames are the names a cluster's certificate must hold: every pod's peer name (the Raft
// address, and the API address the operator and forwarding followers use) under one wildcard, so scaling
// needs no new certificate, and the client and leader Services' names for clients of the API.
func certificateDNSNames(c *seqv1.SequencerCluster) []string {
	names := []string{"*." + peerDomain(c), peerDomain(c)}
	for _, svc := range []string{clientServiceName(c), leaderServiceName(c)} {
		names = append(names, svc+"."+c.Namespace+".svc", svc+"."+c.Namespace+".svc.cluster.local")
	}
	return names
}

// ensureNetworkPolicy applies the cluster's NetworkPolicy when spec.networkPolicy.enabled, and deletes the one
// it owns otherwise. A NetworkPolicy of the same name that the operator does not own is left alone.
func (r *SequencerClusterReconciler) ensureNetworkPolicy(ctx context.Context, c *seqv1.SequencerCluster) error {
	if networkPolicyEnabled(c) {
		return r.apply(ctx, c, buildNetworkPolicy(c, r.OperatorPods))
	}
	np := &networkingv1.NetworkPolicy{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: networkPolicyName(c)}, np)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("cannot read NetworkPolicy %s: %w", networkPolicyName(c), err)
	case !metav1.IsControlledBy(np, c):
		return nil
	}
	log.FromContext(ctx).Info("Deleting NetworkPolicy: spec.networkPolicy is not enabled", "networkPolicy", np.Name)
	if err := r.Client.Delete(ctx, np, client.Preconditions{UID: &np.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("cannot delete NetworkPolicy %s: %w", np.Name, err)
	}
	return nil
}
