// Package operatorlive measures the operator on a real local control plane (internal/localcluster) with
// the operator installed from the Helm chart and real node pods: how fast status.leader and the leader
// label follow a SIGKILL of the leader, how long `kubectl apply` of a 3-replica SequencerCluster takes to
// reach Healthy, how long scaling 3 → 5 → 3 takes, and how long a new member joining a cluster with a
// long history takes to become a voter. Object changes are timed from informer events and Raft
// leadership from the nodes' /raft/watch streams, so the resolution is milliseconds, not a poll interval.
package operatorlive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/internal/bench/stats"
	"github.com/seqops/sequencer-operator/internal/localcluster"
	"github.com/seqops/sequencer-operator/internal/localcluster/kubelet"
)

const (
	operatorNamespace = "seqops-system"
	operatorRelease   = "sequencer-operator"
	// nodeImage maps to <BinDir>/node through the kubelet's image mapping.
	nodeImage = "ghcr.io/seqops/sequencer-node:v0.1.0"
	// blockTime of the measured clusters (the CRD's default).
	blockTime = "100ms"
	// leaderLease is spec.raft.leaderLeaseTimeout, as in the e2e suite: the default 50 ms deposes a
	// healthy leader whenever its peers are not scheduled within 50 ms, which on two cores shared with a
	// whole control plane happens every few seconds and would measure the machine, not the operator.
	leaderLease = "100ms"
)

// Default sizes (Options' zero values) and the full run's. The issue asks for 100000 blocks of history; on a
// quiet 2-core machine three replicas build them at ~400 blocks/s with 1 ms blocks (each block is committed
// before the next), and the new member backfills them at ~800 blocks/s after it is promoted.
const (
	QuickFailovers     = 5
	FullFailovers      = 30
	QuickHistoryBlocks = 5000
	IssueHistoryBlocks = 100000
)

// Options size a run. Zero values take the defaults given on each field.
type Options struct {
	// Failovers is how many times the leader pod's process is SIGKILLed. Default QuickFailovers.
	Failovers int
	// HistoryBlocks is the chain height built before a member is added. Default QuickHistoryBlocks.
	HistoryBlocks uint64
	// HistoryBlockTime is the block time the history is built with, through spec.extraArgs (the CRD
	// refuses less than 10 ms). Default 1ms.
	HistoryBlockTime time.Duration
	// RepoRoot holds charts/sequencer-operator. Default: localcluster.RepoRoot().
	RepoRoot string
	// BinDir holds node, manager and localcluster, tools/helm and k8s/<version>/{etcd,kube-*,kubectl}.
	// Default: <RepoRoot>/bin.
	BinDir string
	// WorkDir holds the local cluster's data and logs. Default: a new directory under
	// <RepoRoot>/_output, removed after a successful run; a given WorkDir is kept.
	WorkDir string
	// Progress receives one line per step. Default: discard.
	Progress io.Writer
}

func (o Options) withDefaults() (Options, error) {
	if o.Failovers <= 0 {
		o.Failovers = QuickFailovers
	}
	if o.HistoryBlocks == 0 {
		o.HistoryBlocks = QuickHistoryBlocks
	}
	if o.HistoryBlockTime <= 0 {
		o.HistoryBlockTime = time.Millisecond
	}
	if o.RepoRoot == "" {
		root, err := localcluster.RepoRoot()
		if err != nil {
			return o, err
		}
		o.RepoRoot = root
	}
	if o.BinDir == "" {
		o.BinDir = filepath.Join(o.RepoRoot, "bin")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o, nil
}

func (o Options) k8sBinDir() string {
	return filepath.Join(o.BinDir, "k8s", localcluster.KubernetesVersion)
}
func (o Options) helm() string    { return filepath.Join(o.BinDir, "tools", "helm") }
func (o Options) kubectl() string { return filepath.Join(o.k8sBinDir(), "kubectl") }

// Missing lists the files a run needs that are absent; a caller can skip the benchmark when it is not empty.
func (o Options) Missing() []string {
	o, err := o.withDefaults()
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, f := range []string{
		filepath.Join(o.k8sBinDir(), "etcd"), filepath.Join(o.k8sBinDir(), "kube-apiserver"),
		filepath.Join(o.k8sBinDir(), "kube-controller-manager"), filepath.Join(o.k8sBinDir(), "kube-scheduler"),
		o.kubectl(), o.helm(), filepath.Join(o.BinDir, "node"), filepath.Join(o.BinDir, "manager"),
		filepath.Join(o.BinDir, "localcluster"), filepath.Join(o.RepoRoot, "charts", "sequencer-operator", "Chart.yaml"),
	} {
		if _, err := os.Stat(f); err != nil {
			out = append(out, f)
		}
	}
	return out
}

// Result is what a run measured. Durations are milliseconds unless the name says seconds.
type Result struct {
	// Setup records the environment: control-plane start and operator install times, timings used.
	Setup Setup `json:"setup"`
	// CreateMs is `kubectl apply` of a 3-replica SequencerCluster → Healthy with 3 ready voters.
	CreateMs float64 `json:"createMs"`
	// ScaleUpMs and ScaleDownMs are the spec.replicas patch 3 → 5 and 5 → 3 → Healthy with the new
	// number of ready pods, all voters.
	ScaleUpMs   float64 `json:"scaleUpMs"`
	ScaleDownMs float64 `json:"scaleDownMs"`
	// Failover is the leader SIGKILL series.
	Failover FailoverResult `json:"failover"`
	// History is the join of a new member into a cluster with a long chain.
	History HistoryResult `json:"history"`
	// Notes say what a reader needs to interpret the figures.
	Notes []string `json:"notes"`
	// TotalSeconds is the whole run, setup and teardown included.
	TotalSeconds float64 `json:"totalSeconds"`
}

// Setup describes the environment of a run.
type Setup struct {
	// ControlPlaneSeconds is localcluster.Start; OperatorInstallSeconds is `helm upgrade --install
	// --wait` until the Deployment is available.
	ControlPlaneSeconds    float64 `json:"controlPlaneSeconds"`
	OperatorInstallSeconds float64 `json:"operatorInstallSeconds"`
	// CPUs is runtime.NumCPU() of the machine, shared by the control plane, operator and node pods.
	CPUs int `json:"cpus"`
	// BlockTime and LeaderLeaseTimeout are the measured clusters' spec.blockTime and
	// spec.raft.leaderLeaseTimeout; the other Raft timings are the CRD defaults.
	BlockTime          string `json:"blockTime"`
	LeaderLeaseTimeout string `json:"leaderLeaseTimeout"`
}

// Run starts a local control plane, installs the operator with Helm, measures, and removes everything.
func Run(ctx context.Context, opts Options) (Result, error) {
	began := time.Now()
	o, err := opts.withDefaults()
	if err != nil {
		return Result{}, err
	}
	if missing := o.Missing(); len(missing) > 0 {
		return Result{}, fmt.Errorf("the operator benchmark needs %s (make k8s-bins build bin/tools/helm)", strings.Join(missing, ", "))
	}
	if os.Geteuid() != 0 {
		return Result{}, errors.New("the operator benchmark needs root: the local cluster's kubelet creates network namespaces and mounts")
	}
	workDir, ownDir := o.WorkDir, o.WorkDir == ""
	if ownDir {
		if err := os.MkdirAll(filepath.Join(o.RepoRoot, "_output"), 0o755); err != nil {
			return Result{}, fmt.Errorf("cannot create _output: %w", err)
		}
		if workDir, err = os.MkdirTemp(filepath.Join(o.RepoRoot, "_output"), "bench-operator-"); err != nil {
			return Result{}, fmt.Errorf("cannot create the work directory: %w", err)
		}
	}

	res := Result{Setup: Setup{CPUs: runtime.NumCPU(), BlockTime: blockTime, LeaderLeaseTimeout: leaderLease}}
	b, err := start(ctx, o, workDir, &res.Setup)
	if err != nil {
		return res, fmt.Errorf("%w (logs in %s)", err, workDir)
	}
	runErr := b.measure(ctx, &res)
	stopErr := b.stop()
	res.Notes = append(res.Notes, notes(res)...)
	res.TotalSeconds = time.Since(began).Seconds()
	if err := errors.Join(runErr, stopErr); err != nil {
		return res, fmt.Errorf("%w (the local cluster's data and logs stay in %s)", err, workDir)
	}
	if ownDir {
		_ = os.RemoveAll(workDir)
	}
	return res, nil
}

// bench is a running local cluster with the operator installed and the informers started.
type bench struct {
	o      Options
	lc     *localcluster.Cluster
	k8s    client.Client
	objs   *objectLog
	cancel context.CancelFunc
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.o.Progress, "operator-live: "+format+"\n", args...)
}

func start(ctx context.Context, o Options, workDir string, setup *Setup) (_ *bench, retErr error) {
	b := &bench{o: o}
	b.progress("starting the local control plane in %s", workDir)
	t := time.Now()
	lc, err := localcluster.Start(ctx, localcluster.Config{
		DataDir:            filepath.Join(workDir, "cluster"),
		BinDir:             o.k8sBinDir(),
		LocalclusterBinary: filepath.Join(o.BinDir, "localcluster"),
		Images:             kubelet.DefaultImageMappings(o.BinDir),
		// As the e2e suite: a killed node container comes back within a fraction of a second.
		RestartBackoffBase: 200 * time.Millisecond,
		RestartBackoffMax:  2 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot start the local cluster: %w", err)
	}
	b.lc = lc
	defer func() {
		if retErr != nil {
			_ = b.stop()
		}
	}()
	setup.ControlPlaneSeconds = time.Since(t).Seconds()

	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("cannot build the scheme: %w", err)
	}
	if err := seqv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("cannot build the scheme: %w", err)
	}
	if b.k8s, err = client.New(lc.RESTConfig(), client.Options{Scheme: scheme}); err != nil {
		return nil, fmt.Errorf("cannot create a client: %w", err)
	}

	b.progress("installing the operator with Helm from charts/sequencer-operator")
	t = time.Now()
	if out, err := b.run(ctx, nil, o.helm(), "upgrade", "--install", operatorRelease, "charts/sequencer-operator",
		"--kubeconfig", lc.KubeconfigPath(), "--namespace", operatorNamespace, "--create-namespace",
		"--wait", "--timeout", "3m"); err != nil {
		return nil, fmt.Errorf("helm install: %w\n%s", err, out)
	}
	if err := b.waitOperatorAvailable(ctx); err != nil {
		return nil, err
	}
	setup.OperatorInstallSeconds = time.Since(t).Seconds()

	wctx, cancel := context.WithCancel(ctx)
	b.cancel = cancel
	if b.objs, err = startObjectLog(wctx, lc.RESTConfig(), scheme); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *bench) waitOperatorAvailable(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var deps appsv1.DeploymentList
		err := b.k8s.List(ctx, &deps, client.InNamespace(operatorNamespace))
		if err == nil && len(deps.Items) == 1 && deps.Items[0].Status.AvailableReplicas >= 1 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the operator's Deployment in %s did not become available within 2 minutes (last error: %v)", operatorNamespace, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (b *bench) stop() error {
	if b.cancel != nil {
		b.cancel()
	}
	if b.lc == nil {
		return nil
	}
	b.progress("stopping the local cluster")
	if err := b.lc.Stop(context.Background()); err != nil {
		return fmt.Errorf("cannot stop the local cluster: %w", err)
	}
	return nil
}

// run runs a command from the repository root with stdin and returns its combined output.
func (b *bench) run(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = b.o.RepoRoot
	cmd.Stdin = stdin
	return cmd.CombinedOutput()
}

// measure runs the phases in order; a failed phase ends the run, keeping what was measured.
func (b *bench) measure(ctx context.Context, res *Result) error {
	ns, name := "bench-operator", "bench"
	if err := b.createNamespace(ctx, ns); err != nil {
		return err
	}
	if err := b.measureCreate(ctx, ns, name, res); err != nil {
		return err
	}
	fo, err := b.measureFailovers(ctx, ns, name, b.o.Failovers)
	res.Failover = fo
	if err != nil {
		return err
	}
	if err := b.measureScale(ctx, ns, name, res); err != nil {
		return err
	}
	// The history cluster runs alone: the first one's pods would only take CPU from it.
	if err := b.deleteNamespace(ctx, ns); err != nil {
		return err
	}
	hns := "bench-history"
	if err := b.createNamespace(ctx, hns); err != nil {
		return err
	}
	h, err := b.measureHistory(ctx, hns, "history")
	res.History = h
	return err
}

// notes explain the figures of res.
func notes(res Result) []string {
	out := []string{
		fmt.Sprintf("Local control plane (kube-apiserver, etcd, kcm, scheduler %s) and a process kubelet on one %d-CPU machine shared with the operator and all node pods; figures are noisy.",
			localcluster.KubernetesVersion, res.Setup.CPUs),
		fmt.Sprintf("Clusters use blockTime %s and spec.raft.leaderLeaseTimeout %s (the e2e suite's setting; the 50 ms default deposes healthy leaders on this machine); other Raft timings are the CRD defaults.",
			blockTime, leaderLease),
		"Times are from the benchmark's action (kill syscall, kubectl apply start, patch request) to the informer event or /raft/watch document that first showed the result.",
	}
	if h := res.History; h.TargetBlocks > 0 && h.TargetBlocks < IssueHistoryBlocks {
		out = append(out, fmt.Sprintf("History: the new member joined %d blocks of history, not the issue's %d: at the %.0f blocks/s this run built history with, %d blocks would take %.0f min to build.",
			h.HeightAtAdd, IssueHistoryBlocks, h.BuildBlocksPerSecond, IssueHistoryBlocks, float64(IssueHistoryBlocks)/max(h.BuildBlocksPerSecond, 1)/60))
	}
	return out
}

// stat summarises samples in milliseconds.
func stat(samples []float64) stats.Summary { return stats.Summarize(samples) }
