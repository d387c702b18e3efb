package operatorfootprint

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/seqops/sequencer-operator/internal/localcluster"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

func TestLayout(t *testing.T) {
	l := layout{namespace: "footprint", clusters: 12, block: 42}
	tests := []struct {
		pod, ip string
		ok      bool
	}{
		{"seq-000-0", "127.42.1.1", true},
		{"seq-011-2", "127.42.12.3", true},
		{"seq-012-0", "", false}, // beyond the clusters
		{"seq-003-3", "", false}, // beyond the replicas
		{"seq-003-01", "", false},
		{"other-0", "", false},
	}
	for _, tt := range tests {
		ip, ok := l.ipOfPod(tt.pod)
		if ip != tt.ip || ok != tt.ok {
			t.Errorf("ipOfPod(%q) = %q, %v; want %q, %v", tt.pod, ip, ok, tt.ip, tt.ok)
		}
	}
	host := l.host(3, 1)
	if want := "seq-003-1.seq-003-peers.footprint.svc.cluster.local"; host != want {
		t.Fatalf("host(3, 1) = %q, want %q", host, want)
	}
	if ip, ok := l.ipOfHost(host); !ok || ip != "127.42.4.2" {
		t.Errorf("ipOfHost(%q) = %q, %v", host, ip, ok)
	}
	if _, ok := l.ipOfHost("seq-003-1.seq-004-peers.footprint.svc.cluster.local"); ok {
		t.Error("ipOfHost accepted a pod name under another cluster's domain")
	}
	hosts := l.hostsFile("127.0.0.1\tlocalhost\n")
	lines := strings.Split(strings.TrimSpace(hosts), "\n")
	if lines[0] != "127.0.0.1\tlocalhost" || len(lines) != 2+12*3 {
		t.Fatalf("hosts file has %d lines, starting %q", len(lines), lines[0])
	}
	if !strings.Contains(hosts, "127.42.4.2\t"+host+"\n") {
		t.Errorf("hosts file lacks %s", host)
	}
}

// TestFakeGroupBootstrap drives a fake group through the real node API server and client the way the
// operator bootstraps a 3-node cluster: pod 0 founds it, the others are added as non-voters and promoted.
func TestFakeGroupBootstrap(t *testing.T) {
	ctx := context.Background()
	g := newGroup("demo-peers.ns.svc.cluster.local", time.Now)
	g.promote = 10 * time.Millisecond
	clients := map[string]*nodeapi.Client{}
	for _, id := range []string{"demo-0", "demo-1", "demo-2"} {
		srv := httptest.NewServer(nodeapi.NewServer(g.node(id), nodeapi.ServerConfig{Token: "tok"}))
		t.Cleanup(srv.Close)
		clients[id] = nodeapi.NewClient(srv.URL, nodeapi.WithToken("tok"))
	}
	status := func(id string) *nodeapi.Status {
		t.Helper()
		st, err := clients[id].Status(ctx)
		if err != nil {
			t.Fatalf("status of %s: %v", id, err)
		}
		return st
	}

	// A pod other than the bootstrap one never founds a cluster, nor does pod 0 with "existing".
	g.node("demo-1").start("demo-0", "new")
	g.node("demo-2").start("demo-0", "existing")
	if st := status("demo-1"); len(st.Configuration.Servers) != 0 || st.Term != 0 {
		t.Fatalf("demo-1 founded a cluster: %+v", st)
	}
	g.node("demo-0").start("demo-0", "new")
	st := status("demo-0")
	if st.State != nodeapi.StateLeader || len(st.Configuration.Servers) != 1 || st.Autopilot == nil {
		t.Fatalf("demo-0 after bootstrap: %+v", st)
	}
	if err := clients["demo-1"].Ready(ctx); err == nil {
		t.Error("demo-1 is ready before it was added")
	}

	// Membership goes through the leader with compare-and-set on the configuration index.
	if _, err := clients["demo-0"].AddMember(ctx, nodeapi.AddMemberRequest{ID: "demo-1", Address: "demo-1:7000", ConfigIndex: st.Configuration.Index + 1}); !nodeapi.IsConflict(err) {
		t.Fatalf("stale configIndex: got %v, want a conflict", err)
	}
	cfg, err := clients["demo-0"].AddMember(ctx, nodeapi.AddMemberRequest{ID: "demo-1", Address: "demo-1:7000", ConfigIndex: st.Configuration.Index})
	if err != nil {
		t.Fatalf("add demo-1: %v", err)
	}
	if cfg.Servers[1].Suffrage != nodeapi.SuffrageNonvoter {
		t.Errorf("demo-1 added as %s", cfg.Servers[1].Suffrage)
	}
	if _, err := clients["demo-1"].AddMember(ctx, nodeapi.AddMemberRequest{ID: "demo-2", Address: "demo-2:7000"}); err == nil {
		t.Error("a follower without a forward route accepted a membership call")
	}
	if _, err := clients["demo-0"].AddMember(ctx, nodeapi.AddMemberRequest{ID: "demo-2", Address: "demo-2:7000"}); err != nil {
		t.Fatalf("add demo-2: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := status("demo-0")
		voters := 0
		for _, m := range st.Configuration.Servers {
			if m.Suffrage == nodeapi.SuffrageVoter {
				voters++
			}
		}
		if voters == 3 && st.Autopilot.Healthy && st.Autopilot.FailureTolerance == 1 && st.CommitIndex == st.Configuration.Index {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not 3 healthy voters: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, id := range []string{"demo-1", "demo-2"} {
		if err := clients[id].Ready(ctx); err != nil {
			t.Errorf("%s not ready: %v", id, err)
		}
		if st := status(id); st.LeaderID != "demo-0" || st.LeaderAPI != "http://demo-0.demo-peers.ns.svc.cluster.local:8080" {
			t.Errorf("%s sees leader %q at %q", id, st.LeaderID, st.LeaderAPI)
		}
	}

	// The leader's pod stopping elects another voter; it comes back as a follower.
	g.node("demo-0").stop()
	if st := status("demo-1"); st.State != nodeapi.StateLeader {
		t.Errorf("demo-1 after demo-0 stopped: %s", st.State)
	}
	g.node("demo-0").start("demo-0", "existing")
	if st := status("demo-0"); st.State != nodeapi.StateFollower || st.LeaderID != "demo-1" {
		t.Errorf("demo-0 back: %s, leader %q", st.State, st.LeaderID)
	}
}

func TestMetricsFrom(t *testing.T) {
	text := `# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="sequencercluster",result="success"} 40
controller_runtime_reconcile_total{controller="sequencercluster",result="error"} 2
controller_runtime_reconcile_total{controller="other",result="success"} 100
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 2.097152e+07
# TYPE go_goroutines gauge
go_goroutines 321
`
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	m, err := metricsFrom(families)
	if err != nil {
		t.Fatal(err)
	}
	if m.reconciles != 42 || m.heapInuse != 20971520 || m.goroutines != 321 {
		t.Errorf("metricsFrom = %+v", m)
	}
	delete(families, "controller_runtime_reconcile_total")
	if _, err := metricsFrom(families); err == nil {
		t.Error("no error without the reconcile counter")
	}
}

func TestCPUPercent(t *testing.T) {
	at := time.Unix(1000, 0)
	a := procSample{at: at, cpu: 2 * time.Second}
	b := procSample{at: at.Add(10 * time.Second), cpu: 3500 * time.Millisecond}
	if got := cpuPercent(a, b); got != 15 {
		t.Errorf("cpuPercent = %v, want 15", got)
	}
	if got := cpuPercent(b, b); got != 0 {
		t.Errorf("cpuPercent over no time = %v", got)
	}
}

func TestSampleProcReadsThisProcess(t *testing.T) {
	s, err := sampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.rss == 0 || s.hwm < s.rss {
		t.Errorf("VmRSS %d, VmHWM %d", s.rss, s.hwm)
	}
}

// TestRunSmoke runs the whole benchmark with three clusters. It needs root, the control plane in bin/k8s and
// `make build`'s bin/manager and bin/localcluster.
func TestRunSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local control plane")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the local cluster and the manager's mount namespace")
	}
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Skip(err)
	}
	for _, f := range []string{filepath.Join("bin", "k8s", localcluster.KubernetesVersion, "kube-apiserver"), filepath.Join("bin", "manager"), filepath.Join("bin", "localcluster")} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Skipf("%s is missing: run `make k8s-bins build`", f)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Clusters: 3, Window: 5 * time.Second, HealthyTimeout: 2 * time.Minute, WorkDir: t.TempDir(), Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.MarshalIndent(res, "", "  ")
	t.Logf("result: %s", out)
	if res.Clusters != 3 || res.Pods != 9 || res.HealthyAtEnd != 3 {
		t.Errorf("clusters %d, pods %d, healthy at the end %d", res.Clusters, res.Pods, res.HealthyAtEnd)
	}
	if res.RSSSteadyMiB <= 0 || res.RSSPeakMiB < res.RSSSteadyMaxMiB || res.WindowSeconds <= 0 {
		t.Errorf("memory figures: steady %.1f, max %.1f, peak %.1f, window %.1fs", res.RSSSteadyMiB, res.RSSSteadyMaxMiB, res.RSSPeakMiB, res.WindowSeconds)
	}
	// The operator keeps one watch stream per pod: the fake nodes were reached through the private /etc/hosts.
	if res.WatchStreams != 9 {
		t.Errorf("%d watch streams open, want 9", res.WatchStreams)
	}
	if res.Reconciles == nil || res.HeapInuseMiB == nil {
		t.Errorf("metrics unreadable: %s", res.MetricsError)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
