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
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

func TestNodeAPIOverTLSTrustsTheClusterCA(t *testing.T) {
	// A TLS node API stand-in: its certificate is the CA the Secret hands the operator.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"nodeId":"c-0","state":"Leader"}`))
	}))
	defer srv.Close()
	caPEM := pemCert(srv.Certificate().Raw)

	c := &seqv1.SequencerCluster{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"},
		Spec: seqv1.SequencerClusterSpec{TLS: &seqv1.TLSSpec{Enabled: true, SecretName: "c-tls"}}}
	if got := DefaultNodeURL(c, "c-0"); !strings.HasPrefix(got, "https://") {
		t.Fatalf("node URL of a TLS cluster: %s", got)
	}
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	cases := []struct {
		name string
		// data nil: no Secret at all.
		data        map[string][]byte
		wantWaiting string
	}{
		{"the CA from the Secret", map[string][]byte{"tls.crt": caPEM, "tls.key": []byte("k"), "ca.crt": caPEM}, ""},
		{"no Secret yet", nil, "does not exist yet"},
		{"no CA in the Secret", map[string][]byte{"tls.crt": caPEM, "tls.key": []byte("k")}, "has no ca.crt"},
		{"no key pair in the Secret", map[string][]byte{"ca.crt": caPEM}, "has no tls.crt, tls.key"},
		{"a CA that is not PEM", map[string][]byte{"tls.crt": caPEM, "tls.key": []byte("k"), "ca.crt": []byte("junk")}, "holds no PEM certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(scheme)
			if tc.data != nil {
				b = b.WithObjects(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "c-tls", Namespace: "ns", ResourceVersion: "1"}, Data: tc.data})
			}
			cl := b.Build()
			r := &SequencerClusterReconciler{Client: cl, APIReader: cl}
			s := &scope{cluster: c}
			waiting, err := r.readNodeTLS(context.Background(), s)
			if err != nil {
				t.Fatalf("readNodeTLS: %v", err)
			}
			if tc.wantWaiting != "" {
				if !strings.Contains(waiting, tc.wantWaiting) || !strings.Contains(waiting, "c-tls") || s.nodeHTTP != nil {
					t.Fatalf("want waiting for c-tls with %q and no client, got %q, %v", tc.wantWaiting, waiting, s.nodeHTTP)
				}
				return
			}
			if waiting != "" || s.nodeHTTP == nil {
				t.Fatalf("readNodeTLS waits (%q), client %v", waiting, s.nodeHTTP)
			}
			st, err := nodeapi.NewClient(srv.URL, nodeapi.WithHTTPClient(s.nodeHTTP)).Status(context.Background())
			if err != nil || st.NodeID != "c-0" {
				t.Fatalf("status over TLS: %+v, %v", st, err)
			}
			// The client is kept while the Secret does not change.
			s2 := &scope{cluster: c}
			if _, err := r.readNodeTLS(context.Background(), s2); err != nil || s2.nodeHTTP != s.nodeHTTP {
				t.Fatalf("client not reused: %v", err)
			}
		})
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
