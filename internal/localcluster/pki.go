package localcluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki holds the file paths of every key and certificate the control plane uses. All of it is generated
// fresh for a new data dir and reused when the data dir already has it, so that a kubeconfig written by
// one `up` keeps working after `down` and another `up` on the same data dir.
type pki struct {
	Dir string

	CACert, CAKey                        string
	APIServerCert, APIServerKey          string
	AdminCert, AdminKey                  string
	KubeletServingCert, KubeletServKey   string
	KubeletClientCert, KubeletClientKey  string
	ServiceAccountKey, ServiceAccountPub string
}

func newPKI(dir string) pki {
	p := func(name string) string { return filepath.Join(dir, name) }
	return pki{
		Dir:    dir,
		CACert: p("ca.crt"), CAKey: p("ca.key"),
		APIServerCert: p("apiserver.crt"), APIServerKey: p("apiserver.key"),
		AdminCert: p("admin.crt"), AdminKey: p("admin.key"),
		KubeletServingCert: p("kubelet.crt"), KubeletServKey: p("kubelet.key"),
		KubeletClientCert: p("apiserver-kubelet-client.crt"), KubeletClientKey: p("apiserver-kubelet-client.key"),
		ServiceAccountKey: p("sa.key"), ServiceAccountPub: p("sa.pub"),
	}
}

// ensure creates whatever is missing. apiServerIPs must contain every address a client dials the API
// server on: loopback for host clients and the pod bridge gateway for in-cluster clients.
func (p pki) ensure(apiServerIPs []net.IP) error {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("cannot create pki dir %s: %w", p.Dir, err)
	}
	caCert, caKey, err := p.ensureCA()
	if err != nil {
		return err
	}
	apiDNS := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	// The serving certificate is always rewritten: the bridge gateway can change between runs.
	if err := writeLeaf(p.APIServerCert, p.APIServerKey, caCert, caKey, leafSpec{
		cn: "kube-apiserver", dns: apiDNS, ips: apiServerIPs, server: true,
	}); err != nil {
		return err
	}
	leaves := []struct {
		cert, key string
		spec      leafSpec
	}{
		{p.AdminCert, p.AdminKey, leafSpec{cn: "localcluster-admin", org: "system:masters", client: true}},
		{p.KubeletClientCert, p.KubeletClientKey, leafSpec{cn: "kube-apiserver-kubelet-client", org: "system:masters", client: true}},
		{p.KubeletServingCert, p.KubeletServKey, leafSpec{cn: "localcluster-kubelet", dns: []string{"localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1)}, server: true}},
	}
	for _, l := range leaves {
		if fileExists(l.cert) && fileExists(l.key) {
			continue
		}
		if err := writeLeaf(l.cert, l.key, caCert, caKey, l.spec); err != nil {
			return err
		}
	}
	if !fileExists(p.ServiceAccountKey) || !fileExists(p.ServiceAccountPub) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return fmt.Errorf("cannot generate service-account key: %w", err)
		}
		pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return fmt.Errorf("cannot encode service-account public key: %w", err)
		}
		if err := writePEM(p.ServiceAccountKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key), 0o600); err != nil {
			return err
		}
		if err := writePEM(p.ServiceAccountPub, "PUBLIC KEY", pub, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (p pki) ensureCA() (*x509.Certificate, crypto.Signer, error) {
	if fileExists(p.CACert) && fileExists(p.CAKey) {
		return loadCA(p.CACert, p.CAKey)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "localcluster-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot self-sign CA: %w", err)
	}
	if err := writeKey(p.CAKey, key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(p.CACert, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot parse CA: %w", err)
	}
	return cert, key, nil
}

type leafSpec struct {
	cn, org        string
	dns            []string
	ips            []net.IP
	server, client bool
}

func writeLeaf(certPath, keyPath string, ca *x509.Certificate, caKey crypto.Signer, s leafSpec) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("cannot generate key for %s: %w", s.cn, err)
	}
	subject := pkix.Name{CommonName: s.cn}
	if s.org != "" {
		subject.Organization = []string{s.org}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:     s.dns,
		IPAddresses:  s.ips,
	}
	if s.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if s.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("cannot sign certificate for %s: %w", s.cn, err)
	}
	if err := writeKey(keyPath, key); err != nil {
		return err
	}
	return writePEM(certPath, "CERTIFICATE", der, 0o644)
}

func loadCA(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("cannot decode CA PEM in %s", filepath.Dir(certPath))
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot parse CA certificate: %w", err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot parse CA key: %w", err)
	}
	return cert, key, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("cannot encode key %s: %w", path, err)
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
