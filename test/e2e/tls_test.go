//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// e2eCA is the CA of the TLS spec: it signs the nodes' certificate and, separately, a client's.
type e2eCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newE2ECA() *e2eCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e raft CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &e2eCA{cert: cert, key: key, pool: pool}
}

func (ca *e2eCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// issue returns a PEM certificate and key for dnsNames, usable as a TLS server and client.
func (ca *e2eCA) issue(dnsNames ...string) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "sequencer node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames:    dnsNames,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// tlsNodeClient reads a TLS node's API from the host, trusting the CA only (as the operator does).
func tlsNodeClient(sc *seqv1.SequencerCluster, pod string, pool *x509.CertPool) *nodeapi.Client {
	url := fmt.Sprintf("https://%s.%s-peers.%s.svc.cluster.local:8080", pod, sc.Name, sc.Namespace)
	return nodeapi.NewClient(url, nodeapi.WithHTTPClient(&http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{DialContext: lc.DialContext, DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}))
}

// tlsRaftLeader is the pod whose /raft (over HTTPS) says Leader, with the highest term, and its status.
func tlsRaftLeader(ctx context.Context, sc *seqv1.SequencerCluster, pods []string, pool *x509.CertPool) (string, *nodeapi.Status, error) {
	var leader string
	var best *nodeapi.Status
	for _, p := range pods {
		st, err := tlsNodeClient(sc, p, pool).Status(ctx)
		if err == nil && st.State == nodeapi.StateLeader && (best == nil || st.Term > best.Term) {
			leader, best = p, st
		}
	}
	if best == nil {
		return "", nil, errors.New("no pod reports itself Leader over HTTPS")
	}
	return leader, best, nil
}

// waitTLSStatusLeader waits until a producing pod other than notPod leads in Raft and status.leader names it.
func waitTLSStatusLeader(ctx context.Context, sc *seqv1.SequencerCluster, pods []string, pool *x509.CertPool, notPod string, timeout time.Duration) (string, *nodeapi.Status) {
	var leader string
	var st *nodeapi.Status
	Eventually(func(g Gomega) {
		var err error
		leader, st, err = tlsRaftLeader(ctx, sc, pods, pool)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(leader).NotTo(Equal(notPod), "the Raft leader")
		g.Expect(st.Producing).To(BeTrue(), "the leader %s is producing", leader)
		got, err := getCluster(ctx, sc)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Status.Leader).To(Equal(leader), "status.leader")
	}).WithContext(ctx).WithTimeout(timeout).WithPolling(100*time.Millisecond).Should(Succeed(),
		"status.leader should name the Raft leader (not %q)", notPod)
	return leader, st
}

// The nodes of a cluster with spec.tls.secretName speak mutual TLS on Raft and TLS on the API; the operator
// reaches them with the Secret's CA; plain HTTP and clients without a certificate are refused.
var _ = Describe("Mutual TLS", Label(LabelTLS, LabelDisruptive), func() {
	It("runs a 3-node cluster on a TLS Secret, fails over, and refuses plain and unauthenticated peers", func(ctx SpecContext) {
		ns := createNamespace(ctx, "tls")
		sc := newSequencerCluster(ns, "tls", 3)
		ca := newE2ECA()

		By("creating the Secret the operator expects: a certificate for every pod's peer name, with ca.crt")
		// docs/operator.md: valid for *.<name>-peers.<namespace>.svc.cluster.local (every pod's Raft and API name).
		certPEM, keyPEM := ca.issue(fmt.Sprintf("*.%s-peers.%s.svc.cluster.local", sc.Name, ns))
		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "tls-raft", Namespace: ns},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM, "ca.crt": ca.pem()},
		})).To(Succeed())
		sc.Spec.TLS = &seqv1.TLSSpec{Enabled: true, SecretName: "tls-raft"}
		sc = createHealthyCluster(ctx, sc)
		pods := podNames(sc, 3)

		By("the LEADER column naming the Raft leader, read over HTTPS with the CA")
		// Inside one Eventually: an election on a busy machine (members are still being promoted) may move
		// leadership between two reads, and the column must then follow.
		var leader string
		var st *nodeapi.Status
		Eventually(func(g Gomega) {
			var err error
			leader, st, err = tlsRaftLeader(ctx, sc, pods, ca.pool)
			g.Expect(err).NotTo(HaveOccurred())
			out, stderr, err := kubectl(ctx, "get", "seqc", "-n", ns, sc.Name, "-o", "custom-columns=LEADER:.status.leader,PHASE:.status.phase", "--no-headers")
			g.Expect(err).NotTo(HaveOccurred(), stderr)
			g.Expect(strings.Fields(out)).To(Equal([]string{leader, string(seqv1.PhaseHealthy)}), "kubectl get seqc")
		}).WithContext(ctx).WithTimeout(30*time.Second).WithPolling(200*time.Millisecond).Should(Succeed(),
			"the LEADER column should name the Raft leader")

		By("blocks being produced and replicated to every node over mutual TLS")
		Eventually(func(g Gomega) {
			for _, p := range pods {
				got, err := tlsNodeClient(sc, p, ca.pool).Status(ctx)
				g.Expect(err).NotTo(HaveOccurred(), "/raft of %s", p)
				g.Expect(got.Height).To(BeNumerically(">=", st.Height+20), "height of %s", p)
			}
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

		By("refusing plain HTTP on the API port and clients without a certificate on the Raft port, from the host to the pod IP")
		pod, err := getPod(ctx, ns, pods[0])
		Expect(err).NotTo(HaveOccurred())
		apiAddr := net.JoinHostPort(pod.Status.PodIP, "8080")
		raftAddr := net.JoinHostPort(pod.Status.PodIP, "7000")
		serverName := fmt.Sprintf("%s.%s-peers.%s.svc.cluster.local", pods[0], sc.Name, ns)
		plain := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := plain.Get("http://" + apiAddr + "/raft")
		Expect(err).NotTo(HaveOccurred(), "the API port answers (with a refusal)")
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		// Go's TLS server answers a plain request with 400 and this text; it never serves the API over HTTP.
		Expect(resp.StatusCode).To(Equal(http.StatusBadRequest), "plain HTTP to %s: %s", apiAddr, body)
		Expect(string(body)).To(ContainSubstring("HTTP request to an HTTPS server"))
		fmt.Fprintf(GinkgoWriter, "plain HTTP to %s: %d %s\n", apiAddr, resp.StatusCode, strings.TrimSpace(string(body)))
		// The same port by IP over HTTPS, trusting the CA: served.
		viaIP := nodeapi.NewClient("https://"+apiAddr, nodeapi.WithHTTPClient(&http.Client{Timeout: 3 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: serverName, MinVersion: tls.VersionTLS12}}}))
		_, err = viaIP.Status(ctx)
		Expect(err).NotTo(HaveOccurred(), "HTTPS with the CA to %s", apiAddr)

		// The Raft port demands a client certificate from the CA. Reading after the handshake surfaces the
		// server's verdict (TLS 1.3 checks the client's certificate after the client's side of the handshake).
		raftRead := func(certs []tls.Certificate) error {
			dialer := &net.Dialer{Timeout: 3 * time.Second}
			conn, err := tls.DialWithDialer(dialer, "tcp", raftAddr, &tls.Config{RootCAs: ca.pool, ServerName: serverName,
				Certificates: certs, MinVersion: tls.VersionTLS12})
			if err != nil {
				return err
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(time.Second))
			_, err = bufio.NewReader(conn).ReadByte()
			return err
		}
		err = raftRead(nil)
		fmt.Fprintf(GinkgoWriter, "TLS without a client certificate to %s: %v\n", raftAddr, err)
		Expect(err).To(HaveOccurred(), "a TLS client without a certificate must be refused by the Raft port")
		Expect(err.Error()).To(Or(ContainSubstring("certificate required"), ContainSubstring("bad certificate")),
			"refusal of a client without a certificate")
		// Control: with a certificate from the CA the connection is kept open, waiting for a Raft RPC.
		clientCert, clientKey := ca.issue("e2e-client")
		pair, err := tls.X509KeyPair(clientCert, clientKey)
		Expect(err).NotTo(HaveOccurred())
		err = raftRead([]tls.Certificate{pair})
		var nerr net.Error
		Expect(errors.As(err, &nerr) && nerr.Timeout()).To(BeTrue(), "with a client certificate the Raft port waits for an RPC; got %v", err)
		// Plain TCP: a Raft RPC without TLS gets no answer it could parse, only an alert or a closed connection.
		raw, err := (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "tcp", raftAddr)
		Expect(err).NotTo(HaveOccurred())
		_ = raw.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = raw.Write([]byte("\x00plain raft rpc\n"))
		b, readErr := bufio.NewReader(raw).ReadByte()
		_ = raw.Close()
		Expect(readErr == nil && b != 0x15).To(BeFalse(), "plain bytes to the Raft port must get a TLS alert or nothing, got %#x", b)

		By("SIGKILL of the leader's process: a new leader, and status.leader following it")
		leader, st = waitTLSStatusLeader(ctx, sc, pods, ca.pool, "", 30*time.Second)
		Expect(lc.KillPodProcess(ctx, ns, leader, "", syscall.SIGKILL)).To(Succeed())
		killed := time.Now()
		next, nextSt := waitTLSStatusLeader(ctx, sc, without(pods, leader), ca.pool, leader, 30*time.Second)
		Expect(nextSt.Term).To(BeNumerically(">", st.Term), "the new leader's term")
		fmt.Fprintf(GinkgoWriter, "TLS failover %s → %s; status.leader followed %s after the kill\n", leader, next, time.Since(killed).Round(time.Millisecond))

		By("the killed pod rejoining over TLS")
		waitHealthy(ctx, sc, 3, 2*time.Minute)
		Eventually(func(g Gomega) {
			for _, p := range pods {
				got, err := tlsNodeClient(sc, p, ca.pool).Status(ctx)
				g.Expect(err).NotTo(HaveOccurred(), "/raft of %s", p)
				g.Expect(got.Height).To(BeNumerically(">", nextSt.Height), "height of %s", p)
			}
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	})
})
