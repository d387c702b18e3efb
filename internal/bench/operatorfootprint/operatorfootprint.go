// Package operatorfootprint measures the operator's memory and CPU while it manages many SequencerClusters
// (DESIGN.md §7: 100 clusters, < 150 MiB RSS). It runs the real manager binary against the local control
// plane; the clusters' pods are bound to a fake node whose "kubelet" is this package, and each pod's node is a
// fake: the real node API server (pkg/nodeapi) over an in-memory Raft group, on its own loopback address.
// Three hundred real node processes with network namespaces do not fit the local cluster's one /24 pod network.
package operatorfootprint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/internal/localcluster"
)

// TargetRSSMiB is DESIGN.md §7's bound on the operator's RSS with 100 clusters.
const TargetRSSMiB = 150

// Options configure a run. Zero values take the defaults named on each field.
type Options struct {
	// Clusters is the number of SequencerClusters, 3 replicas each (default 100; at most 254).
	Clusters int
	// Window is the steady-state measurement window after every cluster is Healthy (default 60 s).
	Window time.Duration
	// HealthyTimeout bounds the wait for every cluster to be Healthy (default 10 min).
	HealthyTimeout time.Duration
	// Progress receives one line per phase and the fake kubelet's errors; nil discards.
	Progress io.Writer
	// WorkDir is where the run's directory (control-plane data, logs, hosts file) is created (default: the
	// system temp dir). The run's directory is removed after a successful run and kept after a failed one.
	WorkDir string
	// ManagerBin is the operator binary (default <repo>/bin/manager; `make build`).
	ManagerBin string
	// LocalclusterBin is the built cmd/localcluster (default <repo>/bin/localcluster).
	LocalclusterBin string
	// K8sBinDir holds etcd, kube-apiserver, kube-controller-manager and kube-scheduler
	// (default <repo>/bin/k8s/<localcluster.KubernetesVersion>).
	K8sBinDir string
	// CRDFile is the SequencerCluster CRD (default <repo>/config/crd/bases/seqops.io_sequencerclusters.yaml).
	CRDFile string
}

// Result is what a run measured. Memory is in MiB (2^20 bytes), CPU in percent of one core, times in seconds.
type Result struct {
	// Clusters and Pods are what the manager managed; every cluster has 3 pods.
	Clusters int `json:"clusters"`
	Pods     int `json:"pods"`
	// FakePods says how the pods were faked.
	FakePods string `json:"fakePods"`
	// HealthySeconds is the time from creating the first SequencerCluster to every one reporting phase Healthy.
	HealthySeconds float64 `json:"healthySeconds"`
	// HealthyAtEnd is how many clusters reported Healthy at the end of the window.
	HealthyAtEnd int `json:"healthyAtEnd"`
	// WindowSeconds is the length of the steady window actually measured.
	WindowSeconds float64 `json:"windowSeconds"`
	// RSSSteadyMiB is the mean VmRSS sampled every second over the window; RSSSteadyMaxMiB the largest sample.
	RSSSteadyMiB    float64 `json:"rssSteadyMiB"`
	RSSSteadyMaxMiB float64 `json:"rssSteadyMaxMiB"`
	// RSSPeakMiB is VmHWM at the end of the window: the peak RSS since the manager started, ramp-up included.
	RSSPeakMiB float64 `json:"rssPeakMiB"`
	// TargetRSSMiB is the design target the peak is compared with.
	TargetRSSMiB float64 `json:"targetRSSMiB"`
	// CPUSteadyPercent is utime+stime over the window as a percentage of one core.
	CPUSteadyPercent float64 `json:"cpuSteadyPercent"`
	// CPURampSeconds is the CPU time the manager used from its start until every cluster was Healthy.
	CPURampSeconds float64 `json:"cpuRampSeconds"`
	// Reconciles is the increase of controller_runtime_reconcile_total{controller="sequencercluster"} over
	// the window, and ReconcilesPerSecond that divided by the window; nil when the metrics were unreadable.
	Reconciles          *float64 `json:"reconciles,omitempty"`
	ReconcilesPerSecond *float64 `json:"reconcilesPerSecond,omitempty"`
	// HeapInuseMiB is go_memstats_heap_inuse_bytes at the end of the window; nil when unreadable.
	HeapInuseMiB *float64 `json:"heapInuseMiB,omitempty"`
	// Goroutines is go_goroutines at the end of the window; nil when unreadable.
	Goroutines *float64 `json:"goroutines,omitempty"`
	// MetricsError says why the metrics figures are missing.
	MetricsError string `json:"metricsError,omitempty"`
	// NodeAPIRequests is how many requests the fake node APIs served during the window (/raft reads of the
	// reconcile passes, membership calls, watch streams opened).
	NodeAPIRequests int64 `json:"nodeAPIRequests"`
	// WatchStreams is the number of /raft/watch streams open at the end of the window.
	WatchStreams int64 `json:"watchStreams"`
}

const (
	namespace    = "footprint"
	fakeNodeName = "fake-nodes"
	fakePodsNote = "each pod is bound to a fake Node kept Ready by the benchmark, which reports it Running; " +
		"its node is pkg/nodeapi's real HTTP server over an in-memory 3-member Raft group (bootstrap by pod 0, " +
		"members added by the operator, promoted after 2 s), on a 127.x.y.z address that the manager's private " +
		"/etc/hosts gives the pod's DNS name"
)

func (o Options) withDefaults() (Options, error) {
	if o.Clusters == 0 {
		o.Clusters = 100
	}
	if o.Clusters < 1 || o.Clusters > maxClusters {
		return o, fmt.Errorf("clusters must be between 1 and %d, not %d", maxClusters, o.Clusters)
	}
	if o.Window <= 0 {
		o.Window = 60 * time.Second
	}
	if o.HealthyTimeout <= 0 {
		o.HealthyTimeout = 10 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.ManagerBin == "" || o.LocalclusterBin == "" || o.K8sBinDir == "" || o.CRDFile == "" {
		root, err := localcluster.RepoRoot()
		if err != nil {
			return o, fmt.Errorf("cannot find the repository for default paths: %w", err)
		}
		o.ManagerBin = or(o.ManagerBin, filepath.Join(root, "bin", "manager"))
		o.LocalclusterBin = or(o.LocalclusterBin, filepath.Join(root, "bin", "localcluster"))
		o.K8sBinDir = or(o.K8sBinDir, filepath.Join(root, "bin", "k8s", localcluster.KubernetesVersion))
		o.CRDFile = or(o.CRDFile, filepath.Join(root, "config", "crd", "bases", "seqops.io_sequencerclusters.yaml"))
	}
	for _, f := range []string{o.ManagerBin, o.LocalclusterBin, filepath.Join(o.K8sBinDir, "kube-apiserver"), o.CRDFile} {
		if _, err := os.Stat(f); err != nil {
			return o, fmt.Errorf("missing %s (run `make build`; the control plane comes from `make k8s-bins`): %w", f, err)
		}
	}
	return o, nil
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// Run starts a local control plane, the fake node and the manager, creates the clusters, waits until all are
// Healthy and measures the manager over the steady window. It stops everything it started before returning.
// It needs root (the local cluster's kubelet and the manager's mount namespace).
func Run(ctx context.Context, o Options) (res Result, retErr error) {
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	if os.Geteuid() != 0 {
		return Result{}, errors.New("the operator footprint benchmark needs root: the local cluster and the manager's mount namespace")
	}
	dir, err := os.MkdirTemp(o.WorkDir, "operatorfootprint-")
	if err != nil {
		return Result{}, fmt.Errorf("cannot create work dir: %w", err)
	}
	defer func() {
		if retErr == nil {
			retErr = os.RemoveAll(dir)
		} else {
			fmt.Fprintf(o.Progress, "operator footprint: logs kept in %s\n", dir)
		}
	}()
	lay := layout{namespace: namespace, clusters: o.Clusters, block: loopbackBlock()}

	fmt.Fprintf(o.Progress, "operator footprint: starting the local control plane in %s\n", dir)
	lc, err := localcluster.Start(ctx, localcluster.Config{DataDir: filepath.Join(dir, "cluster"), BinDir: o.K8sBinDir, LocalclusterBinary: o.LocalclusterBin})
	if err != nil {
		return Result{}, fmt.Errorf("cannot start the local cluster: %w", err)
	}
	defer func() {
		if err := lc.Stop(context.WithoutCancel(ctx)); err != nil && retErr == nil {
			retErr = fmt.Errorf("cannot stop the local cluster: %w", err)
		}
	}()
	// The benchmark is the kubelet of 300 pods: client-go's default 5 requests/s would make it, not the
	// operator, the pace of the ramp-up.
	restCfg := lc.RESTConfig()
	restCfg.QPS, restCfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return Result{}, fmt.Errorf("cannot build a client: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return Result{}, fmt.Errorf("cannot build scheme: %w", err)
	}
	if err := seqv1.AddToScheme(scheme); err != nil {
		return Result{}, fmt.Errorf("cannot build scheme: %w", err)
	}
	cl, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		return Result{}, fmt.Errorf("cannot build a client: %w", err)
	}
	if err := installCRD(ctx, cl, o.CRDFile); err != nil {
		return Result{}, err
	}
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return Result{}, fmt.Errorf("cannot create namespace %s: %w", namespace, err)
	}

	fmt.Fprintf(o.Progress, "operator footprint: registering fake node %s for %d pods on 127.%d.0.0/16\n", fakeNodeName, o.Clusters*replicas, lay.block)
	kl := newFakeKubelet(cs, fakeNodeName, lay, o.Progress)
	if err := kl.register(ctx); err != nil {
		return Result{}, err
	}
	klCtx, stopKubelet := context.WithCancel(ctx)
	klDone := make(chan struct{})
	go func() {
		defer close(klDone)
		kl.run(klCtx)
	}()
	defer func() {
		stopKubelet()
		<-klDone
	}()

	base, err := os.ReadFile("/etc/hosts")
	if err != nil {
		return Result{}, fmt.Errorf("cannot read /etc/hosts: %w", err)
	}
	hostsFile := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsFile, []byte(lay.hostsFile(string(base))), 0o644); err != nil {
		return Result{}, fmt.Errorf("cannot write the manager's hosts file: %w", err)
	}
	mgr, err := startManager(o.ManagerBin, lc.KubeconfigPath(), hostsFile, filepath.Join(dir, "manager.log"))
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if err := mgr.stop(); err != nil && retErr == nil {
			retErr = err
		}
	}()
	if err := mgr.waitReady(ctx, time.Minute); err != nil {
		return Result{}, err
	}
	startSample, err := sampleProc(mgr.pid())
	if err != nil {
		return Result{}, err
	}

	fmt.Fprintf(o.Progress, "operator footprint: manager pid %d ready; creating %d SequencerClusters\n", mgr.pid(), o.Clusters)
	began := time.Now()
	for i := range o.Clusters {
		if err := cl.Create(ctx, benchCluster(lay.clusterName(i))); err != nil {
			return Result{}, fmt.Errorf("cannot create cluster %s: %w", lay.clusterName(i), err)
		}
	}
	if err := waitHealthy(ctx, cl, o.Clusters, o.HealthyTimeout, o.Progress); err != nil {
		return Result{}, err
	}
	res = Result{Clusters: o.Clusters, Pods: o.Clusters * replicas, FakePods: fakePodsNote, HealthySeconds: time.Since(began).Seconds(), TargetRSSMiB: TargetRSSMiB}
	fmt.Fprintf(o.Progress, "operator footprint: all %d clusters Healthy after %.1fs; measuring for %v\n", o.Clusters, res.HealthySeconds, o.Window)

	if err := measure(ctx, mgr, kl, o.Window, startSample, &res); err != nil {
		return Result{}, err
	}
	healthy, err := countHealthy(ctx, cl)
	if err != nil {
		return Result{}, err
	}
	res.HealthyAtEnd = healthy
	fmt.Fprintf(o.Progress, "operator footprint: RSS steady %.1f MiB (max %.1f), peak %.1f MiB (target < %d), CPU %.1f%% of a core, %d/%d Healthy at the end\n",
		res.RSSSteadyMiB, res.RSSSteadyMaxMiB, res.RSSPeakMiB, TargetRSSMiB, res.CPUSteadyPercent, res.HealthyAtEnd, res.Clusters)
	return res, nil
}

// loopbackBlock picks the second octet of the fake nodes' addresses from the PID, so two runs side by side
// (and 127.0.0.1) do not collide.
func loopbackBlock() int { return 10 + os.Getpid()%240 }

// measure samples the manager over the window and fills the window's figures into res.
func measure(ctx context.Context, mgr *managerProc, kl *fakeKubelet, window time.Duration, start procSample, res *Result) error {
	first, err := sampleProc(mgr.pid())
	if err != nil {
		return err
	}
	res.CPURampSeconds = (first.cpu - start.cpu).Seconds()
	before, metricsErr := scrapeMetrics(ctx, mgr.metricsURL)
	served := kl.served.Load()
	var rssSum, rssMax uint64
	samples := 0
	last := first
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for end := first.at.Add(window); time.Now().Before(end); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-mgr.exited:
			return fmt.Errorf("the manager exited during the window: %v", mgr.waitErr)
		case <-t.C:
		}
		if last, err = sampleProc(mgr.pid()); err != nil {
			return err
		}
		rssSum += last.rss
		rssMax = max(rssMax, last.rss)
		samples++
	}
	res.WindowSeconds = last.at.Sub(first.at).Seconds()
	res.CPUSteadyPercent = cpuPercent(first, last)
	res.RSSSteadyMiB = mib(float64(rssSum) / float64(max(samples, 1)))
	res.RSSSteadyMaxMiB = mib(float64(rssMax))
	res.RSSPeakMiB = mib(float64(last.hwm))
	res.NodeAPIRequests = kl.served.Load() - served
	res.WatchStreams = kl.watches.Load()
	after, err := scrapeMetrics(ctx, mgr.metricsURL)
	if metricsErr == nil {
		metricsErr = err
	}
	if metricsErr != nil {
		res.MetricsError = metricsErr.Error()
		return nil
	}
	reconciles := after.reconciles - before.reconciles
	perSecond := reconciles / res.WindowSeconds
	heap := mib(after.heapInuse)
	res.Reconciles, res.ReconcilesPerSecond, res.HeapInuseMiB, res.Goroutines = &reconciles, &perSecond, &heap, &after.goroutines
	return nil
}

func mib(bytes float64) float64 { return bytes / (1 << 20) }

// benchCluster is a 3-node SequencerCluster pinned to the fake node.
func benchCluster(name string) *seqv1.SequencerCluster {
	return &seqv1.SequencerCluster{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: seqv1.SequencerClusterSpec{
			Replicas:     ptrTo(int32(replicas)),
			Image:        "sequencer-node:fake",
			ChainID:      name,
			NodeSelector: map[string]string{fakeNodeLabel: "true"},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

// installCRD creates the SequencerCluster CRD from its manifest and waits until it is established.
func installCRD(ctx context.Context, cl client.Client, file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("cannot read the CRD: %w", err)
	}
	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &crd.Object); err != nil {
		return fmt.Errorf("cannot parse %s: %w", file, err)
	}
	if err := cl.Create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("cannot create the CRD: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		list := &seqv1.SequencerClusterList{}
		if err := cl.List(ctx, list, client.InNamespace(namespace)); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("the SequencerCluster CRD is not served after 1m: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitHealthy waits until n SequencerClusters report phase Healthy, printing the count as it grows.
func waitHealthy(ctx context.Context, cl client.Client, n int, timeout time.Duration, progress io.Writer) error {
	deadline := time.Now().Add(timeout)
	last := -1
	for {
		healthy, err := countHealthy(ctx, cl)
		if err != nil {
			return err
		}
		if healthy != last {
			fmt.Fprintf(progress, "operator footprint: %d/%d clusters Healthy\n", healthy, n)
			last = healthy
		}
		if healthy >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d clusters were Healthy after %v", healthy, n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func countHealthy(ctx context.Context, cl client.Client) (int, error) {
	list := &seqv1.SequencerClusterList{}
	if err := cl.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return 0, fmt.Errorf("cannot list SequencerClusters: %w", err)
	}
	healthy := 0
	for _, c := range list.Items {
		if c.Status.Phase == seqv1.PhaseHealthy {
			healthy++
		}
	}
	return healthy, nil
}
