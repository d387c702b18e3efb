// Package localcluster runs a real Kubernetes control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler built from source by hack/build-k8s.sh) on loopback, plus the
// process kubelet of package kubelet as its only node. Tests start one with Start and stop it with
// Stop; the localcluster command wraps the same calls as `up`, `down` and `status`.
//
// Everything it creates is recorded in <data-dir>/state.json, so Down (from any process) removes it
// even after the process that started it crashed. It needs root: pods get network namespaces.
package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/seqops/sequencer-operator/internal/localcluster/kubelet"
	"github.com/seqops/sequencer-operator/internal/localcluster/podnet"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubernetesVersion and EtcdVersion are the pinned versions hack/build-k8s.sh builds.
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.6.16"
	// DefaultNodeName is the name of the process kubelet's node.
	DefaultNodeName = "localcluster"
	serviceCIDR     = "10.0.0.0/24"
)

// Config says where the cluster keeps its files and which binaries it runs.
type Config struct {
	// DataDir holds etcd data, certificates, logs, the kubelet's files, persistent volume data and
	// state.json. Required.
	DataDir string
	// BinDir holds etcd, kube-apiserver, kube-controller-manager and kube-scheduler. Default:
	// $KUBEBUILDER_ASSETS, else <repo>/bin/k8s/<KubernetesVersion>.
	BinDir string
	// LocalclusterBinary is the built cmd/localcluster; it runs the kubelet and launches pod
	// processes. Default: <repo>/bin/localcluster.
	LocalclusterBinary string
	// Kubeconfig is where the admin kubeconfig is written. Default: <DataDir>/kubeconfig.
	Kubeconfig string
	// Images maps container images to binaries. Default: kubelet.DefaultImageMappings(<repo>/bin).
	Images []kubelet.ImageMapping
	// NodeName of the process kubelet. Default: DefaultNodeName.
	NodeName string
	// Detach lets the started processes outlive the caller (the `up` command). When false they are
	// killed by the kernel if the caller dies, which is what tests want.
	Detach bool
	// RestartBackoffBase and RestartBackoffMax tune the crash-loop back-off (defaults 1 s and 30 s).
	RestartBackoffBase, RestartBackoffMax time.Duration
	// Log receives progress messages. Default: discard.
	Log logr.Logger
}

// Cluster is a running local cluster.
type Cluster struct {
	cfg        Config
	state      *State
	restConfig *rest.Config
	client     kubernetes.Interface
	cmds       []*exec.Cmd
}

// alive wraps a health check so that waiting stops at once when the component already exited.
func (c *Cluster) alive(name string, check func() error) func() error {
	return func() error {
		for _, p := range c.state.Processes {
			if p.Name == name && !p.Alive() {
				return errComponentExited
			}
		}
		return check()
	}
}

var errComponentExited = errors.New("component exited")

// RepoRoot finds the repository root (the directory with go.mod) from the working directory upwards,
// so tests in any package find bin/.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("cannot get working directory: %w", err)
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) && fileExists(filepath.Join(dir, "hack", "build-k8s.sh")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the repository root (go.mod with hack/build-k8s.sh) above the working directory")
		}
		dir = parent
	}
}

// DefaultBinDir returns $KUBEBUILDER_ASSETS or <repo>/bin/k8s/<KubernetesVersion>.
func DefaultBinDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	root, err := RepoRoot()
	if err != nil {
		return filepath.Join("bin", "k8s", KubernetesVersion)
	}
	return filepath.Join(root, "bin", "k8s", KubernetesVersion)
}

// Preflight says why a cluster cannot start here (not root, binaries missing), or nil. Tests skip
// with its message.
func Preflight(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("the local cluster needs root (network namespaces, bind mounts)")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if !fileExists(filepath.Join(cfg.BinDir, b)) {
			return fmt.Errorf("%s missing in %s; run make k8s-bins", b, cfg.BinDir)
		}
	}
	if !fileExists(cfg.LocalclusterBinary) {
		return fmt.Errorf("%s missing; run make localcluster", cfg.LocalclusterBinary)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("iproute2 (ip) is not installed")
	}
	return nil
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.DataDir == "" {
		return cfg, errors.New("localcluster: DataDir is required")
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return cfg, fmt.Errorf("cannot resolve data dir: %w", err)
	}
	cfg.DataDir = abs
	root, rootErr := RepoRoot()
	if cfg.BinDir == "" {
		cfg.BinDir = DefaultBinDir()
	}
	if cfg.LocalclusterBinary == "" {
		if rootErr != nil {
			return cfg, fmt.Errorf("cannot default LocalclusterBinary: %w", rootErr)
		}
		cfg.LocalclusterBinary = filepath.Join(root, "bin", "localcluster")
	}
	if cfg.Images == nil {
		if rootErr != nil {
			return cfg, fmt.Errorf("cannot default image mappings: %w", rootErr)
		}
		cfg.Images = kubelet.DefaultImageMappings(filepath.Join(root, "bin"))
	}
	if cfg.Kubeconfig == "" {
		cfg.Kubeconfig = filepath.Join(cfg.DataDir, "kubeconfig")
	}
	if cfg.NodeName == "" {
		cfg.NodeName = DefaultNodeName
	}
	if cfg.Log.GetSink() == nil {
		cfg.Log = logr.Discard()
	}
	return cfg, nil
}

// Start brings up etcd, the API server, the controller manager, the scheduler and the process kubelet,
// waits until all are healthy and the node is Ready, and writes the admin kubeconfig. If it fails or
// ctx is cancelled (Ctrl-C during `up`), it removes everything it started before returning.
func Start(ctx context.Context, cfg Config) (_ *Cluster, retErr error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := Preflight(cfg); err != nil {
		return nil, err
	}
	if s, err := ReadState(cfg.DataDir); err == nil {
		for _, p := range s.Processes {
			if p.Alive() {
				return nil, fmt.Errorf("a cluster is already running in %s (%s pid %d); run down first", cfg.DataDir, p.Name, p.PID)
			}
		}
		// Leftovers of a crashed run: clean them before reusing the data dir.
		if err := Down(ctx, cfg.DataDir, cfg.Log); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"logs", "etcd", "kubelet", "volumes"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o755); err != nil {
			return nil, fmt.Errorf("cannot create %s: %w", d, err)
		}
	}
	c := &Cluster{cfg: cfg, state: &State{Kubeconfig: cfg.Kubeconfig, NodeName: cfg.NodeName, KubeletDir: filepath.Join(cfg.DataDir, "kubelet"), DataDir: cfg.DataDir}}
	defer func() {
		if retErr != nil {
			cfg.Log.Info("Start failed, removing what was started", "error", retErr.Error())
			_ = Down(context.WithoutCancel(ctx), cfg.DataDir, cfg.Log)
		}
	}()

	start := time.Now()
	reapStale(ctx, cfg.Log)
	subnet, err := podnet.Allocate(ctx)
	if err != nil {
		return nil, err
	}
	c.state.Bridge = subnet.Bridge
	c.state.PodCIDR = subnet.Network.String()
	c.state.Gateway = subnet.Gateway.String()
	c.state.NetnsPrefix = "lc-" + strings.TrimPrefix(subnet.Bridge, "lcbr") + "-"
	if err := writeState(cfg.DataDir, c.state); err != nil {
		return nil, err
	}
	cfg.Log.Info("Allocated pod network", "bridge", subnet.Bridge, "cidr", c.state.PodCIDR)

	pk := newPKI(filepath.Join(cfg.DataDir, "pki"))
	if err := pk.ensure([]net.IP{net.IPv4(127, 0, 0, 1), subnet.Gateway, net.IPv4(10, 0, 0, 1)}); err != nil {
		return nil, err
	}
	ports, err := freePorts(7)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort, kcmPort, schedPort, kubeletPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	c.state.APIServerURL = fmt.Sprintf("https://127.0.0.1:%d", apiPort)

	// etcd
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if err := c.launch("etcd", []string{
		filepath.Join(cfg.BinDir, "etcd"),
		"--name=localcluster", "--data-dir=" + filepath.Join(cfg.DataDir, "etcd"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=localcluster=" + peerURL,
		// Test data only: losing the last writes on a power cut is fine, fsync latency is not.
		"--unsafe-no-fsync",
	}); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, "etcd", 120*time.Second, c.alive("etcd", func() error { return httpOK(ctx, nil, etcdURL+"/health") })); err != nil {
		return nil, c.withLog("etcd", err)
	}

	// kube-apiserver
	if err := c.launch("kube-apiserver", []string{
		filepath.Join(cfg.BinDir, "kube-apiserver"),
		"--etcd-servers=" + etcdURL,
		// Advertised on the bridge gateway: that is where pods reach it (through the kubelet's forwarder),
		// and the API server refuses a loopback address for the kubernetes Service's endpoints.
		"--bind-address=127.0.0.1", "--advertise-address=" + subnet.Gateway.String(), "--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + pk.APIServerCert, "--tls-private-key-file=" + pk.APIServerKey,
		"--client-ca-file=" + pk.CACert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pk.ServiceAccountPub,
		"--service-account-signing-key-file=" + pk.ServiceAccountKey,
		"--service-cluster-ip-range=" + serviceCIDR,
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--kubelet-client-certificate=" + pk.KubeletClientCert, "--kubelet-client-key=" + pk.KubeletClientKey,
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-certificate-authority=" + pk.CACert,
		// Webhooks and aggregated APIs are called at their endpoints' pod IPs (reachable from the host)
		// instead of a ClusterIP that no kube-proxy routes.
		"--enable-aggregator-routing=true",
	}); err != nil {
		return nil, err
	}
	if err := c.writeKubeconfig(pk); err != nil {
		return nil, err
	}
	adminTLS, err := clientTLS(pk.CACert, pk.AdminCert, pk.AdminKey)
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, "kube-apiserver", 120*time.Second, c.alive("kube-apiserver", func() error {
		return httpOK(ctx, adminTLS, c.state.APIServerURL+"/readyz")
	})); err != nil {
		return nil, c.withLog("kube-apiserver", err)
	}

	// kube-controller-manager and kube-scheduler use the admin identity: one kubeconfig, no bootstrap RBAC.
	if err := c.launch("kube-controller-manager", []string{
		filepath.Join(cfg.BinDir, "kube-controller-manager"),
		"--kubeconfig=" + cfg.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(kcmPort),
		"--leader-elect=false",
		"--service-account-private-key-file=" + pk.ServiceAccountKey,
		"--root-ca-file=" + pk.CACert,
		"--cluster-signing-cert-file=" + pk.CACert, "--cluster-signing-key-file=" + pk.CAKey,
		"--service-cluster-ip-range=" + serviceCIDR,
		"--controllers=*",
	}); err != nil {
		return nil, err
	}
	if err := c.launch("kube-scheduler", []string{
		filepath.Join(cfg.BinDir, "kube-scheduler"),
		"--kubeconfig=" + cfg.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(schedPort),
		"--leader-elect=false",
	}); err != nil {
		return nil, err
	}
	insecure := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // self-signed health endpoints on loopback
	for name, port := range map[string]int{"kube-controller-manager": kcmPort, "kube-scheduler": schedPort} {
		url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
		if err := waitFor(ctx, name, 120*time.Second, c.alive(name, func() error { return httpOK(ctx, insecure, url) })); err != nil {
			return nil, c.withLog(name, err)
		}
	}

	c.restConfig, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("cannot load kubeconfig %s: %w", cfg.Kubeconfig, err)
	}
	c.client, err = kubernetes.NewForConfig(c.restConfig)
	if err != nil {
		return nil, fmt.Errorf("cannot create client: %w", err)
	}

	// The process kubelet.
	kcfg := &kubelet.Config{
		NodeName: cfg.NodeName, Kubeconfig: cfg.Kubeconfig,
		Dir: c.state.KubeletDir, VolumesDir: filepath.Join(cfg.DataDir, "volumes"),
		Bridge: subnet.Bridge, PodCIDR: c.state.PodCIDR, Gateway: c.state.Gateway, NetnsPrefix: c.state.NetnsPrefix,
		APIServerHostPort: fmt.Sprintf("127.0.0.1:%d", apiPort), APIServerPort: apiPort, CACert: pk.CACert,
		ListenAddr:  fmt.Sprintf("127.0.0.1:%d", kubeletPort),
		ServingCert: pk.KubeletServingCert, ServingKey: pk.KubeletServKey,
		Launcher: cfg.LocalclusterBinary, Images: cfg.Images,
		RestartBackoffBase: kubelet.Duration{Duration: cfg.RestartBackoffBase},
		RestartBackoffMax:  kubelet.Duration{Duration: cfg.RestartBackoffMax},
		DieWithParent:      true,
	}
	kcfgPath := filepath.Join(cfg.DataDir, "kubelet", "config.json")
	if err := kubelet.WriteConfig(kcfgPath, kcfg); err != nil {
		return nil, err
	}
	if err := c.launch("kubelet", []string{cfg.LocalclusterBinary, "kubelet", "--config=" + kcfgPath}); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, "node "+cfg.NodeName+" Ready", 120*time.Second, c.alive("kubelet", func() error { return c.nodeReady(ctx) })); err != nil {
		return nil, c.withLog("kubelet", err)
	}
	// Pods are refused until the service account controller made the default account.
	if err := waitFor(ctx, "default service account", 120*time.Second, func() error {
		_, err := c.client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return nil, c.withLog("kube-controller-manager", err)
	}
	cfg.Log.Info("Local cluster is up", "apiserver", c.state.APIServerURL, "kubeconfig", cfg.Kubeconfig, "took", time.Since(start).Round(time.Millisecond).String())
	return c, nil
}

// launch starts one component and records it in the state file before anything waits on it, so that
// an interrupted Start still finds it.
func (c *Cluster) launch(name string, argv []string) error {
	c.cfg.Log.Info("Starting component", "component", name)
	logFile := filepath.Join(c.cfg.DataDir, "logs", name+".log")
	cmd, rec, err := startProcess(name, logFile, !c.cfg.Detach, argv, nil)
	if err != nil {
		return err
	}
	c.cmds = append(c.cmds, cmd)
	// Reap the child when it exits so that it does not linger as a zombie that looks alive.
	go func() { _ = cmd.Wait() }()
	c.state.Processes = append(c.state.Processes, rec)
	return writeState(c.cfg.DataDir, c.state)
}

// withLog adds the tail of a component's log to a startup error: that is where the reason is.
func (c *Cluster) withLog(name string, err error) error {
	data, rerr := os.ReadFile(filepath.Join(c.cfg.DataDir, "logs", name+".log"))
	if rerr != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return fmt.Errorf("%w\n--- last lines of %s.log ---\n%s", err, name, strings.Join(lines, "\n"))
}

func (c *Cluster) nodeReady(ctx context.Context) error {
	n, err := c.client.CoreV1().Nodes().Get(ctx, c.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return errors.New("node not Ready yet")
}

func (c *Cluster) writeKubeconfig(pk pki) error {
	ca, err := os.ReadFile(pk.CACert)
	if err != nil {
		return fmt.Errorf("cannot read CA: %w", err)
	}
	cert, err := os.ReadFile(pk.AdminCert)
	if err != nil {
		return fmt.Errorf("cannot read admin certificate: %w", err)
	}
	key, err := os.ReadFile(pk.AdminKey)
	if err != nil {
		return fmt.Errorf("cannot read admin key: %w", err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["localcluster"] = &clientcmdapi.Cluster{Server: c.state.APIServerURL, CertificateAuthorityData: ca}
	kc.AuthInfos["localcluster-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	kc.Contexts["localcluster"] = &clientcmdapi.Context{Cluster: "localcluster", AuthInfo: "localcluster-admin", Namespace: "default"}
	kc.CurrentContext = "localcluster"
	if err := os.MkdirAll(filepath.Dir(c.cfg.Kubeconfig), 0o755); err != nil {
		return fmt.Errorf("cannot create kubeconfig dir: %w", err)
	}
	if err := clientcmd.WriteToFile(*kc, c.cfg.Kubeconfig); err != nil {
		return fmt.Errorf("cannot write kubeconfig %s: %w", c.cfg.Kubeconfig, err)
	}
	return nil
}

// Stop removes everything the cluster started (see Down). Persistent volume data stays in the data dir.
func (c *Cluster) Stop(ctx context.Context) error {
	return Down(ctx, c.cfg.DataDir, c.cfg.Log)
}

// RESTConfig is an admin client config for the cluster.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.restConfig) }

// Client is an admin clientset for the cluster.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// KubeconfigPath is the admin kubeconfig file.
func (c *Cluster) KubeconfigPath() string { return c.cfg.Kubeconfig }

// State is what the cluster recorded about itself.
func (c *Cluster) State() State { return *c.state }

// DataDir is the cluster's data directory.
func (c *Cluster) DataDir() string { return c.cfg.DataDir }

// Down stops the cluster recorded in dataDir and removes everything it created on the host: the
// kubelet first (which stops its pods), then any pod process still alive, the pod network namespaces,
// the bridge, the mount points the kubelet created, and the control plane. It is idempotent and works
// from a fresh process after a crash.
func Down(ctx context.Context, dataDir string, log logr.Logger) error {
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	s, err := ReadState(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := downState(ctx, s, log); err != nil {
		return fmt.Errorf("cannot fully stop the local cluster in %s: %w", dataDir, err)
	}
	log.Info("Local cluster is down", "dataDir", dataDir)
	return removeState(dataDir)
}

// downState removes everything s records; it needs nothing but s.
func downState(ctx context.Context, s *State, log logr.Logger) error {
	var errs []error
	// Reverse start order: the kubelet goes first so that it stops pods gracefully while the API server
	// still answers.
	for i := len(s.Processes) - 1; i >= 0; i-- {
		p := s.Processes[i]
		grace := 5 * time.Second
		if p.Name == "kubelet" {
			grace = 20 * time.Second
		}
		log.Info("Stopping component", "component", p.Name, "pid", p.PID)
		p.stop(grace)
	}
	if s.NetnsPrefix != "" {
		names, err := podnet.ListNetns(s.NetnsPrefix)
		if err != nil {
			errs = append(errs, err)
		}
		for _, ns := range names {
			killNetnsProcesses(ns)
			if err := podnet.DeleteNetns(ctx, ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if s.KubeletDir != "" {
		_ = os.RemoveAll(filepath.Join(s.KubeletDir, "records"))
	}
	if s.Bridge != "" {
		// Deleting the bridge also deletes any veth a crashed kubelet left attached to it.
		for _, l := range bridgePorts(s.Bridge) {
			_ = podnet.DeleteLink(ctx, l)
		}
		if err := podnet.DeleteLink(ctx, s.Bridge); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	unregister(s)
	// Last, as it removes /run/localcluster when nothing else is in it.
	return kubelet.RemoveCreatedMountpoints()
}

func bridgePorts(bridge string) []string {
	entries, err := os.ReadDir(filepath.Join("/sys/class/net", bridge, "brif"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot find a free loopback port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cannot load client certificate: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func httpOK(ctx context.Context, tlsCfg *tls.Config, url string) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d: %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// waitFor polls check every 200 ms until it succeeds, ctx ends or timeout passes.
func waitFor(ctx context.Context, what string, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if apierrors.IsForbidden(last) || errors.Is(last, errComponentExited) {
			return fmt.Errorf("cannot wait for %s: %w", what, last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s: %w", timeout, what, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while waiting for %s: %w", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
