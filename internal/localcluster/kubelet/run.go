package kubelet

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/seqops/sequencer-operator/internal/localcluster/podnet"
	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	"github.com/virtual-kubelet/virtual-kubelet/log/klogv2"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
)

// Run serves as the node until ctx ends, then stops every pod (SIGTERM, grace up to 10 s, SIGKILL)
// and removes their network namespaces. The bridge belongs to the caller (localcluster).
func Run(ctx context.Context, cfg *Config) error {
	log := klog.FromContext(ctx).WithValues("node", cfg.NodeName)
	vklog.L = klogv2.New(nil)

	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("cannot load kubeconfig %s: %w", cfg.Kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("cannot create client: %w", err)
	}
	caCert, err := os.ReadFile(cfg.CACert)
	if err != nil {
		return fmt.Errorf("cannot read cluster CA: %w", err)
	}
	subnet, err := podnet.ParseSubnet(cfg.Bridge, cfg.PodCIDR, cfg.Gateway)
	if err != nil {
		return err
	}
	if !podnet.LinkExists(cfg.Bridge) {
		return fmt.Errorf("pod bridge %s does not exist; the kubelet is started by localcluster, which creates it", cfg.Bridge)
	}
	for _, d := range []string{cfg.Dir, cfg.VolumesDir, filepath.Join(cfg.Dir, "pods")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("cannot create %s: %w", d, err)
		}
	}

	runCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	if err := serveAPIProxy(runCtx, net.JoinHostPort(cfg.Gateway, strconv.Itoa(cfg.APIServerPort)), cfg.APIServerHostPort); err != nil {
		return err
	}
	hosts := newHostsTable(cfg.Gateway, ClusterHostsFile(cfg.Dir))
	if err := watchServiceNames(runCtx, client, hosts); err != nil {
		return fmt.Errorf("cannot watch endpoint slices: %w", err)
	}
	go (&provisioner{client: client, dir: cfg.VolumesDir, log: log.WithName("provisioner")}).run(runCtx)

	eb := record.NewBroadcaster()
	eb.StartRecordingToSink(&corev1client.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer eb.Shutdown()
	recorder := eb.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "localcluster-kubelet", Host: cfg.NodeName})

	// Pods are stopped with a context that outlives runCtx, so that shutdown can still stop them.
	podCtx, cancelPods := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPods()
	var provider *Provider
	host, portStr, err := net.SplitHostPort(cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("cannot parse kubelet listen address %q: %w", cfg.ListenAddr, err)
	}
	port, _ := strconv.Atoi(portStr)
	mux := http.NewServeMux()
	n, err := nodeutil.NewNode(cfg.NodeName, func(pc nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
		describeNode(pc.Node, host, int32(port))
		provider = &Provider{
			ctx: podCtx, cfg: cfg, log: log, client: client, caCert: caCert,
			subnet: subnet, ips: newIPAM(subnet.Network), hosts: hosts,
			mounts:     &mountpoints{},
			configMaps: pc.ConfigMaps, secrets: pc.Secrets, recorder: recorder,
			pods: map[string]*podRuntime{},
		}
		return provider, nil, nil
	},
		nodeutil.WithClient(client),
		func(c *nodeutil.NodeConfig) error {
			c.HTTPListenAddr = cfg.ListenAddr
			c.Handler = mux
			c.EventRecorder = recorder
			// Env is resolved by the provider itself: status.podIP is only known once the pod's
			// network exists, which the generic resolution runs before.
			c.SkipDownwardAPIResolution = true
			c.InformerResyncPeriod = 30 * time.Second
			return nil
		},
		nodeutil.AttachProviderRoutes(mux),
		nodeutil.WithTLSConfig(nodeutil.WithKeyPairFromPath(cfg.ServingCert, cfg.ServingKey)),
	)
	if err != nil {
		return fmt.Errorf("cannot create the virtual node: %w", err)
	}
	log.Info("Starting process kubelet", "listen", cfg.ListenAddr, "bridge", cfg.Bridge, "podCIDR", cfg.PodCIDR)
	errCh := make(chan error, 1)
	go func() { errCh <- n.Run(runCtx) }()
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errCh:
	}
	log.Info("Stopping process kubelet")
	stopServing()
	if provider != nil {
		provider.stopAll(10 * time.Second)
	}
	if runErr != nil && ctx.Err() == nil {
		return fmt.Errorf("virtual node stopped: %w", runErr)
	}
	return nil
}

// ClusterHostsFile is the hosts file with every pod and Service name of the cluster, for processes
// on the host (tests, an operator run out of cluster) that need the names pods use.
func ClusterHostsFile(kubeletDir string) string { return filepath.Join(kubeletDir, "hosts") }

// describeNode fills in what the scheduler and the API server need: capacity, the kubelet endpoint
// (logs, exec) on loopback, and version info.
func describeNode(n *corev1.Node, host string, port int32) {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("64"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourcePods:             resource.MustParse("200"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	n.Labels["kubernetes.io/os"] = "linux"
	n.Labels["kubernetes.io/arch"] = "amd64"
	n.Labels["node.kubernetes.io/instance-type"] = "localcluster"
	n.Status.Capacity = capacity
	n.Status.Allocatable = capacity.DeepCopy()
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}, {Type: corev1.NodeHostName, Address: n.Name}}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = port
	n.Status.NodeInfo = corev1.NodeSystemInfo{
		KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64",
		ContainerRuntimeVersion: "localcluster://process",
	}
}
