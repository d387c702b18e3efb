package sequencer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/seqops/sequencer-operator/pkg/failover"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
	sraft "github.com/seqops/sequencer-operator/pkg/raft"
	"github.com/seqops/sequencer-operator/pkg/sequencer"
)

// testCA issues certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// tlsConfigs returns the server and client configurations a node gets from --tls-* files.
func (ca *testCA) tlsConfigs(t *testing.T, name string) (server, client *tls.Config) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	pair := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	server = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	client = &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
	return server, client
}

type tlsNode struct {
	node     *sequencer.Node
	raftAddr string
	api      string
	client   *nodeapi.Client
}

// startTLSNode runs a node with mutual TLS on a real loopback transport and API.
func startTLSNode(t *testing.T, id string, ca *testCA, key []byte, apis *sync.Map, bootstrap bool) *tlsNode {
	t.Helper()
	server, client := ca.tlsConfigs(t, id)
	raftAddr, httpAddr := freeAddr(t), freeAddr(t)
	apis.Store(raftAddr, "https://"+httpAddr)
	cfg := sequencer.Config{
		ID: id, ChainID: "tls-test", DataDir: t.TempDir(), Bootstrap: bootstrap, SigningKey: key,
		RaftBind: raftAddr, RaftAdvertise: raftAddr, HTTPAddr: httpAddr, APIToken: testToken,
		Producer:  failover.Config{BlockTime: 50 * time.Millisecond},
		Timings:   testTimings,
		Autopilot: sraft.AutopilotConfig{StabilizationTime: 300 * time.Millisecond},
		RaftTLS:   &sraft.TransportTLS{Server: server, Client: client},
		APITLS:    server, APIClientTLS: client,
	}
	n, err := sequencer.New(cfg, zaptest.NewLogger(t).Named(id), sequencer.WithPeerAPI(func(addr string) string {
		if v, ok := apis.Load(addr); ok {
			return v.(string)
		}
		return ""
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Kill)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: client}}
	return &tlsNode{node: n, raftAddr: raftAddr, api: "https://" + httpAddr,
		client: nodeapi.NewClient("https://"+httpAddr, nodeapi.WithToken(testToken), nodeapi.WithHTTPClient(hc))}
}

func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	key := newKey(t)
	apis := &sync.Map{}
	n0 := startTLSNode(t, "t0", ca, key, apis, true)
	n1 := startTLSNode(t, "t1", ca, key, apis, false)
	n2 := startTLSNode(t, "t2", ca, key, apis, false)
	waitFor(t, 5*time.Second, "t0 producing", func() bool { return n0.node.Status().Producing })
	for id, n := range map[string]*tlsNode{"t1": n1, "t2": n2} {
		waitFor(t, 10*time.Second, "adding "+id+" over TLS", func() bool {
			_, err := n0.client.AddMember(context.Background(), nodeapi.AddMemberRequest{ID: id, Address: n.raftAddr})
			return err == nil
		})
	}
	waitFor(t, 15*time.Second, "three voters replicating over TLS", func() bool {
		st := n0.node.Status()
		voters := 0
		for _, s := range st.Configuration.Servers {
			if s.Suffrage == nodeapi.SuffrageVoter {
				voters++
			}
		}
		return voters == 3 && n2.node.Chain().Head().Height > 10 && n1.node.Chain().Head().Height > 10
	})
	// A transaction through a follower is forwarded to the leader over TLS (retried: an election on a busy
	// machine answers 503 for a moment).
	waitFor(t, 10*time.Second, "a transaction forwarded over TLS", func() bool {
		resp, err := n2.client.SubmitTx(context.Background(), []byte("set secure yes"), true)
		return err == nil && resp.Status == nodeapi.TxCommitted
	})

	t.Run("API clients: the CA alone reads status, the token guards membership, an untrusted server is refused", func(t *testing.T) {
		anon := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
		if _, err := nodeapi.NewClient(n0.api, nodeapi.WithHTTPClient(anon)).Status(context.Background()); err != nil {
			t.Fatalf("a client trusting the CA (as the operator does) cannot read status: %v", err)
		}
		if _, err := nodeapi.NewClient(n0.api, nodeapi.WithHTTPClient(anon)).RemoveMember(context.Background(), "t2", 0); !nodeapi.IsUnauthorized(err) {
			t.Fatalf("membership call without the token: want 401, got %v", err)
		}
		untrusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}
		if _, err := nodeapi.NewClient(n0.api, nodeapi.WithHTTPClient(untrusting)).Status(context.Background()); err == nil {
			t.Fatal("a client that does not trust the cluster CA connected")
		}
	})
	t.Run("a Raft peer with a certificate from another CA is refused", func(t *testing.T) {
		_, foreign := newTestCA(t, "someone else").tlsConfigs(t, "intruder")
		foreign.RootCAs = ca.pool // it trusts us; we must not trust it
		conn, err := tls.Dial("tcp", n0.raftAddr, foreign)
		if err == nil {
			// TLS 1.3 reports the server's rejection of the client certificate on the first read.
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil {
			t.Fatal("the Raft transport accepted a peer with a foreign certificate")
		}
	})
	t.Run("a member with a foreign certificate never receives entries", func(t *testing.T) {
		rogue := startTLSNode(t, "rogue", newTestCA(t, "rogue CA"), key, apis, false)
		waitFor(t, 10*time.Second, "adding the rogue member", func() bool {
			_, err := n0.client.AddMember(context.Background(), nodeapi.AddMemberRequest{ID: "rogue", Address: rogue.raftAddr})
			return err == nil
		})
		time.Sleep(time.Second)
		if h := rogue.node.Chain().Head().Height; h != 0 {
			t.Fatalf("a node the cluster cannot authenticate received %d blocks", h)
		}
		waitFor(t, 10*time.Second, "removing the rogue member", func() bool {
			_, err := n0.client.RemoveMember(context.Background(), "rogue", 0)
			return err == nil
		})
	})
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
