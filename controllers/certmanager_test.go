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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http/httptest"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// testCA signs the certificates the cert-manager spec hands out, as a CA Issuer would.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA() *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// issue signs a leaf certificate for dnsNames and ips with the given extended key usages.
func (ca *testCA) issue(dnsNames []string, ips []net.IP, usages []x509.ExtKeyUsage) (*x509.Certificate, tls.Certificate, []byte, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: dnsNames, IPAddresses: ips,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usages,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	Expect(err).NotTo(HaveOccurred())
	return cert, pair, certPEM, keyPEM
}

// serveTLS moves every fake node of f to HTTPS with a certificate from ca, so only a client that trusts ca
// reaches them. Call it before any pod of the cluster exists.
func serveTLS(f *fakeRaft, ca *testCA) {
	_, pair, _, _ := ca.issue(nil, []net.IP{net.ParseIP("127.0.0.1")}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.nodes {
		old := n.srv
		n.srv = httptest.NewUnstartedServer(f.handler(n))
		n.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		n.srv.StartTLS()
		old.Close()
	}
}

// usageNames maps cert-manager's usage names to x509's.
var usageNames = map[string]x509.ExtKeyUsage{"server auth": x509.ExtKeyUsageServerAuth, "client auth": x509.ExtKeyUsageClientAuth}

var _ = Describe("SequencerCluster with tls.issuerRef", func() {
	It("requests a cert-manager Certificate, waits for its Secret, then mounts it and reaches the nodes over HTTPS", func() {
		_, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
			Paths: []string{filepath.Join("testdata", "cert-manager")}, ErrorIfPathMissing: true})
		Expect(err).NotTo(HaveOccurred())

		ns := newNamespace()
		c := minimalCluster(ns, "cm", 3)
		c.Spec.TLS = &seqv1.TLSSpec{Enabled: true, IssuerRef: &seqv1.IssuerReference{Name: "raft-ca", Kind: "ClusterIssuer"}}
		f := createCluster(c)
		ca := newTestCA()
		serveTLS(f, ca)
		key := func(n string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: n} }

		By("creating a Certificate for every pod's peer name and the Services' names")
		cert := &unstructured.Unstructured{}
		cert.SetAPIVersion("cert-manager.io/v1")
		cert.SetKind("Certificate")
		Eventually(func() error { return k8sClient.Get(suiteCtx, key("cm-raft-tls"), cert) }, timeout, poll).Should(Succeed())
		Expect(metav1.GetControllerOf(cert)).NotTo(BeNil())
		Expect(metav1.GetControllerOf(cert).Name).To(Equal("cm"))
		spec := cert.Object["spec"].(map[string]any)
		Expect(spec["issuerRef"]).To(Equal(map[string]any{"name": "raft-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}))
		Expect(spec["secretName"]).To(Equal("cm-raft-tls"))
		Expect(spec).NotTo(HaveKey("commonName"), "a commonName over 64 bytes is refused by cert-manager")
		Expect(spec["secretTemplate"]).To(HaveKeyWithValue("labels", HaveKeyWithValue(seqv1.LabelCluster, "cm")))
		var dnsNames []string
		for _, n := range spec["dnsNames"].([]any) {
			dnsNames = append(dnsNames, n.(string))
		}
		var usages []x509.ExtKeyUsage
		for _, u := range spec["usages"].([]any) {
			if x, ok := usageNames[u.(string)]; ok {
				usages = append(usages, x)
			}
		}
		Expect(usages).To(ConsistOf(x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth), "usages %v", spec["usages"])

		By("issuing, as cert-manager would, exactly what the Certificate asks for, and checking it fits the nodes")
		leaf, _, certPEM, keyPEM := ca.issue(dnsNames, nil, usages)
		for ord := range 9 {
			// The Raft address, which is also the host the operator and forwarding followers call the API on.
			host := fmt.Sprintf("cm-%d.cm-peers.%s.svc.cluster.local", ord, ns)
			Expect(leaf.VerifyHostname(host)).To(Succeed(), "the certificate must be valid for %s", host)
			Expect(DefaultNodeURL(c, fmt.Sprintf("cm-%d", ord))).To(Equal("https://" + host + ":8080"))
		}
		for _, host := range []string{"cm." + ns + ".svc", "cm-leader." + ns + ".svc.cluster.local"} {
			Expect(leaf.VerifyHostname(host)).To(Succeed(), "API clients reach the Services as %s", host)
		}

		By("reporting that it waits for the Secret, without starting pods")
		Eventually(func(g Gomega) {
			got := getCluster(ns, "cm")
			p := meta.FindStatusCondition(got.Status.Conditions, seqv1.ConditionProgressing)
			g.Expect(p).NotTo(BeNil())
			g.Expect(p.Reason).To(Equal(seqv1.ReasonWaitingForTLSSecret))
			g.Expect(p.Message).To(And(ContainSubstring("cm-raft-tls"), ContainSubstring("cert-manager"), ContainSubstring("does not exist yet")))
			g.Expect(got.Status.Phase).To(Equal(seqv1.PhasePending))
		}, timeout, poll).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(suiteCtx, key("cm"), &appsv1.StatefulSet{})).NotTo(Succeed(), "no StatefulSet before the Secret")
			var pods corev1.PodList
			g.Expect(k8sClient.List(suiteCtx, &pods, client.InNamespace(ns))).To(Succeed())
			g.Expect(pods.Items).To(BeEmpty())
		}, "3s", "200ms").Should(Succeed())

		By("issuing the Secret: the StatefulSet mounts it and the operator reaches the HTTPS nodes with its CA")
		Expect(k8sClient.Create(suiteCtx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "cm-raft-tls", Namespace: ns, Labels: map[string]string{seqv1.LabelCluster: "cm"}},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": ca.pem()},
		})).To(Succeed())
		// Healthy needs every node's /raft: the fakes serve HTTPS with a certificate only the Secret's CA verifies.
		waitHealthy(ns, "cm", "cm-0", "cm-1", "cm-2")
		got := getCluster(ns, "cm")
		Expect(meta.FindStatusCondition(got.Status.Conditions, seqv1.ConditionProgressing).Reason).NotTo(Equal(seqv1.ReasonWaitingForTLSSecret))

		sts := &appsv1.StatefulSet{}
		Expect(k8sClient.Get(suiteCtx, key("cm"), sts)).To(Succeed())
		pod := sts.Spec.Template.Spec
		Expect(pod.Volumes).To(ContainElement(And(HaveField("Name", "raft-tls"), HaveField("Secret.SecretName", "cm-raft-tls"))))
		ctr := pod.Containers[0]
		Expect(ctr.VolumeMounts).To(ContainElement(And(HaveField("Name", "raft-tls"), HaveField("MountPath", tlsMountPath))))
		Expect(ctr.Args).To(ContainElements("--tls-cert-file="+tlsMountPath+"/tls.crt",
			"--tls-key-file="+tlsMountPath+"/tls.key", "--tls-ca-file="+tlsMountPath+"/ca.crt"))
		for _, p := range []*corev1.Probe{ctr.StartupProbe, ctr.ReadinessProbe, ctr.LivenessProbe} {
			Expect(p.HTTPGet.Scheme).To(Equal(corev1.URISchemeHTTPS), "the node serves only HTTPS with TLS")
		}
	})
})
