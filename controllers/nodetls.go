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
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// tlsCAKey is the Secret key of the CA that signed the nodes' certificates (cert-manager writes it too).
const tlsCAKey = "ca.crt"

// nodeHTTPClients builds, per cluster, the HTTP client that reaches a TLS-enabled cluster's node API:
// it trusts the CA of the cluster's TLS Secret. Clients are kept while the Secret does not change, so
// connections are reused across passes and by the watcher.
type nodeHTTPClients struct {
	mu      sync.Mutex
	clients map[string]cachedNodeClient
}

type cachedNodeClient struct {
	resourceVersion string
	client          *http.Client
}

// tlsSecretKeys are the keys the nodes mount from the TLS Secret (cert-manager writes all three).
var tlsSecretKeys = []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, tlsCAKey}

// readNodeTLS reads the TLS Secret of a cluster with spec.tls enabled and sets s.nodeHTTP to a client that
// trusts its CA; without TLS the reconciler's plain client is used. While the Secret is missing or incomplete
// it returns what the cluster waits for instead. The Secret is read uncached: a user's Secret does not carry
// the label the operator's cache is restricted to.
func (r *SequencerClusterReconciler) readNodeTLS(ctx context.Context, s *scope) (waiting string, err error) {
	c := s.cluster
	name := tlsSecretName(c)
	if name == "" {
		return "", nil
	}
	source := "spec.tls.secretName"
	if c.Spec.TLS.IssuerRef != nil {
		source = fmt.Sprintf("cert-manager Certificate %s (issuer %s %s)", certificateName(c), c.Spec.TLS.IssuerRef.Kind, c.Spec.TLS.IssuerRef.Name)
	}
	sec := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Sprintf("waiting for TLS Secret %s from %s: it does not exist yet; the pods start once it does", name, source), nil
		}
		return "", fmt.Errorf("cannot read TLS Secret %s: %w", name, err)
	}
	var missing []string
	for _, k := range tlsSecretKeys {
		if len(sec.Data[k]) == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("waiting for TLS Secret %s from %s: it has no %s", name, source, strings.Join(missing, ", ")), nil
	}
	key := c.Namespace + "/" + name
	r.nodeClients.mu.Lock()
	defer r.nodeClients.mu.Unlock()
	if r.nodeClients.clients == nil {
		r.nodeClients.clients = map[string]cachedNodeClient{}
	}
	if cached, ok := r.nodeClients.clients[key]; ok && cached.resourceVersion == sec.ResourceVersion {
		s.nodeHTTP = cached.client
		return "", nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(sec.Data[tlsCAKey]) {
		return fmt.Sprintf("waiting for TLS Secret %s from %s: its %s holds no PEM certificate", name, source, tlsCAKey), nil
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	if r.Dialer != nil {
		transport = r.Dialer.Transport()
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: transport}
	r.nodeClients.clients[key] = cachedNodeClient{resourceVersion: sec.ResourceVersion, client: hc}
	s.nodeHTTP = hc
	return "", nil
}
