package localcluster_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seqops/sequencer-operator/internal/localcluster"
	"github.com/seqops/sequencer-operator/internal/localcluster/kubelet"
	"github.com/seqops/sequencer-operator/internal/localcluster/podnet"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

const (
	testNS  = "lc-test"
	stsName = "demo"
	peers   = "demo-peers"
)

// TestLocalCluster brings the local cluster up, runs a StatefulSet of three sequencer-node pods on it
// and checks what the operator's e2e tests rely on: pods Running and Ready with their own IPs, peer DNS
// names and ports reachable from inside a pod, PVC data kept across pod recreation, restarts after a
// process is killed, a pod cut off and healed, unsupported pods reported without harm to the others,
// and nothing left behind after Stop.
func TestLocalCluster(t *testing.T) {
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 || !fileExists(filepath.Join(localcluster.DefaultBinDir(), "kube-apiserver")) {
		t.Skip("needs root and bin/k8s; run make k8s-bins and run as root (.ci/run does)")
	}
	tmp := t.TempDir()
	lcBin := localclusterBinary(t, root)
	nodeBin := filepath.Join(root, "bin", "node")
	realNode := fileExists(nodeBin)
	if realNode {
		t.Logf("Pods run the real node binary %s", nodeBin)
	} else {
		nodeBin = goBuild(t, root, "./internal/localcluster/testdata/fakenode", filepath.Join(tmp, "fakenode"))
		t.Logf("bin/node is absent (run make build): pods run the stand-in %s instead", nodeBin)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cfg := localcluster.Config{
		DataDir:            filepath.Join(tmp, "cluster"),
		LocalclusterBinary: lcBin,
		Images:             []kubelet.ImageMapping{{Pattern: "*sequencer-node*", Binary: nodeBin}},
		RestartBackoffBase: 200 * time.Millisecond,
		RestartBackoffMax:  2 * time.Second,
	}
	if err := localcluster.Preflight(cfg); err != nil {
		t.Skipf("cannot run a local cluster here: %v", err)
	}
	began := time.Now()
	c, err := localcluster.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Cluster up in %s", time.Since(began).Round(time.Millisecond))
	stopped := false
	defer func() {
		if t.Failed() {
			dumpClusterState(t, c)
		}
		if !stopped {
			_ = c.Stop(context.Background())
		}
	}()
	cs := c.Client()

	mustCreateWorkload(ctx, t, cs)
	pods := waitStatefulSetReady(ctx, t, cs, 3, nil)
	ips := map[string]string{}
	for _, p := range pods {
		if other, dup := ips[p.Status.PodIP]; dup {
			t.Fatalf("pods %s and %s share IP %s", other, p.Name, p.Status.PodIP)
		}
		ips[p.Status.PodIP] = p.Name
	}
	t.Logf("Three pods Ready after %s: %v", time.Since(began).Round(time.Millisecond), ips)

	t.Run("peers resolve and answer from inside a pod", func(t *testing.T) {
		client := c.HTTPClientFromPod(testNS, "demo-1", 2*time.Second)
		for _, p := range pods {
			fqdn := fmt.Sprintf("%s.%s.%s.svc.cluster.local", p.Name, peers, testNS)
			// libc in the pod's mount namespace sees the pod's /etc/hosts.
			out, err := c.ExecInPodNetwork(ctx, testNS, "demo-1", "getent", "hosts", fqdn)
			if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), p.Status.PodIP+" ") {
				t.Errorf("getent hosts %s in demo-1 = %q, %v; want %s", fqdn, out, err, p.Status.PodIP)
			}
			if err := httpOK(client, fmt.Sprintf("http://%s:8080/healthz", fqdn)); err != nil {
				t.Errorf("GET /healthz of %s from demo-1: %v", p.Name, err)
			}
			conn, err := c.DialFromPod(ctx, testNS, "demo-1", "tcp", fqdn+":7000")
			if err != nil {
				t.Errorf("dial %s:7000 from demo-1: %v", fqdn, err)
			} else {
				_ = conn.Close()
			}
		}
	})

	t.Run("Service and pod names resolve from the host and in pods", func(t *testing.T) {
		svc := fmt.Sprintf("%s.%s.svc.cluster.local", peers, testNS)
		waitFor(ctx, t, svc+" to name all three pods", 30*time.Second, func() bool {
			host, err1 := c.Resolve(svc)
			inPod, err2 := c.ResolveFromPod(ctx, testNS, "demo-2", svc)
			return err1 == nil && err2 == nil && len(host) == 3 && len(inPod) == 3
		})
		url := fmt.Sprintf("http://demo-0.%s.%s.svc.cluster.local:8080/healthz", peers, testNS)
		if err := httpOK(c.HTTPClient(2*time.Second), url); err != nil {
			t.Errorf("GET %s from the host: %v", url, err)
		}
	})

	t.Run("in-cluster config reaches the API server from a pod", func(t *testing.T) {
		sa := "/var/run/secrets/kubernetes.io/serviceaccount/"
		token, err := c.ExecInPodNetwork(ctx, testNS, "demo-1", "cat", sa+"token")
		if err != nil || len(token) == 0 {
			t.Fatalf("service-account token: %v", err)
		}
		ca, err := c.ExecInPodNetwork(ctx, testNS, "demo-1", "cat", sa+"ca.crt")
		if err != nil {
			t.Fatal(err)
		}
		ns, err := c.ExecInPodNetwork(ctx, testNS, "demo-1", "cat", sa+"namespace")
		if err != nil || string(ns) != testNS {
			t.Errorf("namespace file = %q, %v", ns, err)
		}
		rec, err := c.Pod(ctx, testNS, "demo-1")
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for _, kv := range strings.Split(readFile(fmt.Sprintf("/proc/%d/environ", rec.Containers["node"])), "\x00") {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		client := c.HTTPClientFromPod(testNS, "demo-1", 5*time.Second)
		client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: "kubernetes.default.svc"}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+net.JoinHostPort(env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"])+"/api", nil)
		req.Header.Set("Authorization", "Bearer "+string(token))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET /api with in-cluster config: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api with in-cluster config answered %d", resp.StatusCode)
		}
	})

	t.Run("container logs through the API", func(t *testing.T) {
		tail := int64(5)
		b, err := cs.CoreV1().Pods(testNS).GetLogs("demo-1", &corev1.PodLogOptions{TailLines: &tail}).DoRaw(ctx)
		if err != nil || len(b) == 0 {
			t.Fatalf("pod logs = %q, %v", b, err)
		}
	})

	t.Run("deleted pod comes back with its PVC data", func(t *testing.T) {
		marker := fmt.Sprint(time.Now().UnixNano())
		if out, err := c.ExecInPodNetwork(ctx, testNS, "demo-0", "sh", "-c", "echo "+marker+" > /data/localcluster-marker"); err != nil {
			t.Fatalf("write marker: %v: %s", err, out)
		}
		old := pods["demo-0"]
		if err := cs.CoreV1().Pods(testNS).Delete(ctx, "demo-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		pods = waitStatefulSetReady(ctx, t, cs, 3, map[string]types.UID{"demo-0": old.UID})
		t.Logf("demo-0 recreated and Ready in %s", time.Since(deleted).Round(time.Millisecond))
		out, err := c.ExecInPodNetwork(ctx, testNS, "demo-0", "cat", "/data/localcluster-marker")
		if err != nil || strings.TrimSpace(string(out)) != marker {
			t.Fatalf("marker after recreation = %q, %v; want %s", out, err, marker)
		}
	})

	t.Run("killed process is restarted", func(t *testing.T) {
		before := pods["demo-1"].Status.ContainerStatuses[0].RestartCount
		if err := c.KillPodProcess(ctx, testNS, "demo-1", "", syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "demo-1 restarted and Ready", 60*time.Second, func() bool {
			p, err := cs.CoreV1().Pods(testNS).Get(ctx, "demo-1", metav1.GetOptions{})
			return err == nil && len(p.Status.ContainerStatuses) == 1 &&
				p.Status.ContainerStatuses[0].RestartCount > before && podReady(p)
		})
	})

	t.Run("cut pod is unreachable until healed", func(t *testing.T) {
		client := c.HTTPClientFromPod(testNS, "demo-1", time.Second)
		url := fmt.Sprintf("http://demo-2.%s.%s.svc.cluster.local:8080/healthz", peers, testNS)
		if err := c.CutPodNetwork(ctx, testNS, "demo-2"); err != nil {
			t.Fatal(err)
		}
		if err := httpOK(client, url); err == nil {
			t.Fatal("demo-2 answered from demo-1 while cut off")
		}
		if err := c.HealPodNetwork(ctx, testNS, "demo-2"); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "demo-2 reachable again", 30*time.Second, func() bool { return httpOK(client, url) == nil })
	})

	t.Run("init container prepares an emptyDir for the main container", func(t *testing.T) {
		p := simplePod("with-init", "ghcr.io/seqops/sequencer-node:test",
			corev1.Volume{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		p.Spec.InitContainers = []corev1.Container{{
			Name: "init", Image: "ghcr.io/seqops/sequencer-node:test",
			Command:      []string{"sh", "-c", "echo $(GREETING) > /mnt/work/greeting"},
			Env:          []corev1.EnvVar{{Name: "GREETING", Value: "hello"}},
			VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/mnt/work"}},
		}}
		p.Spec.Containers[0].Command = []string{"sh", "-c", "exec sleep 600"}
		// A volume over /tmp must not hide the sources of later mounts (the data dir may be under /tmp),
		// and a mount below it lands inside it.
		p.Spec.Volumes = append(p.Spec.Volumes,
			corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "demo-config"}}}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"},
			corev1.VolumeMount{Name: "cfg", MountPath: "/tmp/localcluster-test-cfg"})
		if _, err := cs.CoreV1().Pods(testNS).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "with-init Ready", 30*time.Second, func() bool {
			got, err := cs.CoreV1().Pods(testNS).Get(ctx, "with-init", metav1.GetOptions{})
			return err == nil && podReady(got)
		})
		out, err := c.ExecInPodNetwork(ctx, testNS, "with-init", "cat", "/mnt/work/greeting")
		if err != nil || strings.TrimSpace(string(out)) != "hello" {
			t.Errorf("greeting = %q, %v", out, err)
		}
		out, err = c.ExecInPodNetwork(ctx, testNS, "with-init", "cat", "/tmp/localcluster-test-cfg/chain-id")
		if err != nil || strings.TrimSpace(string(out)) != "localcluster-test" {
			t.Errorf("ConfigMap below the /tmp volume = %q, %v", out, err)
		}
		if fileExists("/tmp/localcluster-test-cfg") {
			t.Errorf("mount target below a volume was created on the host")
		}
		zero := int64(0)
		if err := cs.CoreV1().Pods(testNS).Delete(ctx, "with-init", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a crash-looping container shows its exit and termination message", func(t *testing.T) {
		p := simplePod("crasher", "ghcr.io/seqops/sequencer-node:test")
		p.Spec.Containers[0].Command = []string{"sh", "-c", "echo 'raft store /data/raft/raft.db is corrupted' > /dev/termination-log; exit 3"}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
			Name: "logs", Image: "ghcr.io/seqops/sequencer-node:test",
			Command:                  []string{"sh", "-c", "echo starting; echo 'fatal: from the log' >&2; exit 2"},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		})
		if _, err := cs.CoreV1().Pods(testNS).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := map[string]struct {
			code int32
			msg  string
		}{"c": {3, "raft store /data/raft/raft.db is corrupted\n"}, "logs": {2, "starting\nfatal: from the log\n"}}
		var last []corev1.ContainerStatus
		defer func() {
			if t.Failed() {
				t.Logf("container statuses of crasher: %+v", last)
			}
		}()
		waitFor(ctx, t, "both containers in CrashLoopBackOff with their messages", 60*time.Second, func() bool {
			got, err := cs.CoreV1().Pods(testNS).Get(ctx, "crasher", metav1.GetOptions{})
			if err != nil {
				return false
			}
			last = got.Status.ContainerStatuses
			ok := 0
			for _, st := range last {
				w, lt := st.State.Waiting, st.LastTerminationState.Terminated
				if w != nil && w.Reason == "CrashLoopBackOff" && st.RestartCount > 0 && lt != nil &&
					lt.ExitCode == want[st.Name].code && lt.Reason == "Error" && lt.Message == want[st.Name].msg {
					ok++
				}
			}
			return ok == 2
		})
		if data, err := os.ReadFile("/dev/termination-log"); err == nil && len(data) > 0 {
			t.Errorf("a container's termination message reached the host's /dev/termination-log: %q", data)
		}
		zero := int64(0)
		if err := cs.CoreV1().Pods(testNS).Delete(ctx, "crasher", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("unsupported pods are reported and harm no one", func(t *testing.T) {
		bad := []*corev1.Pod{
			simplePod("hostpath", "ghcr.io/seqops/sequencer-node:test", corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}}),
			simplePod("unmapped", "example.com/no-such-image:1"),
		}
		want := map[string]string{"hostpath": "UnsupportedPodFeature", "unmapped": "ErrImagePull"}
		for _, p := range bad {
			if _, err := cs.CoreV1().Pods(testNS).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for name, reason := range want {
			waitFor(ctx, t, name+" reports "+reason, 30*time.Second, func() bool {
				p, err := cs.CoreV1().Pods(testNS).Get(ctx, name, metav1.GetOptions{})
				if err != nil || len(p.Status.ContainerStatuses) == 0 {
					return false
				}
				w := p.Status.ContainerStatuses[0].State.Waiting
				return p.Status.Reason == reason && w != nil && w.Reason == reason && w.Message != ""
			})
		}
		for name := range want {
			if err := cs.CoreV1().Pods(testNS).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		waitStatefulSetReady(ctx, t, cs, 3, nil)
	})

	// Tear down and look for leftovers.
	st := c.State()
	created, _ := kubelet.ReadCreatedMountpoints()
	var podPIDs []int
	for name := range pods {
		if rec, err := c.Pod(ctx, testNS, name); err == nil {
			for _, pid := range rec.Containers {
				podPIDs = append(podPIDs, pid)
			}
		}
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	for _, p := range st.Processes {
		if p.Alive() {
			t.Errorf("%s (pid %d) still runs after Stop", p.Name, p.PID)
		}
	}
	if names, _ := podnet.ListNetns(st.NetnsPrefix); len(names) > 0 {
		t.Errorf("network namespaces left: %v", names)
	}
	if podnet.LinkExists(st.Bridge) {
		t.Errorf("bridge %s left", st.Bridge)
	}
	if len(created) == 0 {
		t.Logf("No mount points had to be created on this host")
	}
	if others, _ := filepath.Glob("/run/netns/lc-*"); len(others) == 0 {
		// Only when no other local cluster runs on this host can every created mount point go.
		for _, p := range created {
			if fileExists(p) {
				t.Errorf("mount point %s left", p)
			}
		}
	}
	if strings.Contains(readFile("/proc/self/mountinfo"), cfg.DataDir) {
		t.Errorf("mounts of %s left", cfg.DataDir)
	}
	// Only this cluster's pods count: other work on the machine may run the same binary.
	for _, pid := range processesRunning(nodeBin) {
		for _, ours := range podPIDs {
			if pid == ours {
				t.Errorf("pod process %d left", pid)
			}
		}
	}
	if _, err := localcluster.ReadState(cfg.DataDir); err == nil {
		t.Errorf("state file left")
	}
}

func mustCreateWorkload(ctx context.Context, t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	objs := []func() error{
		func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.CoreV1().ConfigMaps(testNS).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "demo-config"}, Data: map[string]string{"chain-id": "localcluster-test"},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.CoreV1().Secrets(testNS).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "demo-secret"},
				Data: map[string][]byte{
					"signing.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
					"token":       []byte("localcluster-test-token"),
				},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.CoreV1().Services(testNS).Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: peers},
				Spec: corev1.ServiceSpec{
					ClusterIP: corev1.ClusterIPNone, PublishNotReadyAddresses: true,
					Selector: map[string]string{"app": stsName},
					Ports:    []corev1.ServicePort{{Name: "raft", Port: 7000}, {Name: "http", Port: 8080}},
				},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.AppsV1().StatefulSets(testNS).Create(ctx, statefulSet(), metav1.CreateOptions{})
			return err
		},
	}
	for _, create := range objs {
		if err := create(); err != nil {
			t.Fatalf("cannot create workload: %v", err)
		}
	}
}

// statefulSet runs the node the way the operator will: stable DNS names for Raft, pod 0 bootstraps,
// the others join through pod 0, configuration from a ConfigMap, keys from a Secret, data on a PVC.
func statefulSet() *appsv1.StatefulSet {
	replicas := int32(3)
	grace := int64(5)
	env := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: stsName},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, ServiceName: peers, PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": stsName}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": stsName}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name:  "node",
						Image: "ghcr.io/seqops/sequencer-node:test",
						Args: []string{"run", "--id", "$(POD_NAME)", "--data-dir", "/data",
							"--raft-addr", ":7000", "--raft-advertise", "$(POD_NAME)." + peers + ".$(POD_NAMESPACE).svc.cluster.local:7000",
							"--http-addr", ":8080", "--chain-id", "$(CHAIN_ID)",
							"--signing-key-file", "/etc/sequencer/secret/signing.key", "--api-token-file", "/etc/sequencer/secret/token",
							"--bootstrap-id", stsName + "-0", "--join", "http://" + stsName + "-0." + peers + ".$(POD_NAMESPACE).svc.cluster.local:8080"},
						Env: []corev1.EnvVar{
							env("POD_NAME", "metadata.name"), env("POD_NAMESPACE", "metadata.namespace"), env("POD_IP", "status.podIP"),
							{Name: "CHAIN_ID", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "demo-config"}, Key: "chain-id"}}},
						},
						Ports: []corev1.ContainerPort{{Name: "raft", ContainerPort: 7000}, {Name: "http", ContainerPort: 8080}},
						StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/etc/sequencer/config/chain-id"}}},
							PeriodSeconds: 1, FailureThreshold: 30},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}},
							PeriodSeconds: 1, FailureThreshold: 3},
						LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 2, FailureThreshold: 5},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "data", MountPath: "/data"},
							{Name: "config", MountPath: "/etc/sequencer/config"},
							{Name: "secret", MountPath: "/etc/sequencer/secret"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "demo-config"}}}},
						{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "demo-secret"}}},
					},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
}

func simplePod(name, image string, volumes ...corev1.Volume) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}, Volumes: volumes},
	}
	for _, v := range volumes {
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: v.Name, MountPath: "/mnt/" + v.Name})
	}
	return p
}

// waitStatefulSetReady waits until n pods of the StatefulSet are Running and Ready, none of them with
// a UID listed in replaced (pods that must have been recreated).
func waitStatefulSetReady(ctx context.Context, t *testing.T, cs kubernetes.Interface, n int, replaced map[string]types.UID) map[string]*corev1.Pod {
	t.Helper()
	var out map[string]*corev1.Pod
	waitFor(ctx, t, fmt.Sprintf("%d Ready pods", n), 120*time.Second, func() bool {
		list, err := cs.CoreV1().Pods(testNS).List(ctx, metav1.ListOptions{LabelSelector: "app=" + stsName})
		if err != nil {
			return false
		}
		out = map[string]*corev1.Pod{}
		for i := range list.Items {
			p := &list.Items[i]
			if p.DeletionTimestamp != nil || replaced[p.Name] == p.UID || p.Status.Phase != corev1.PodRunning || !podReady(p) || p.Status.PodIP == "" {
				continue
			}
			out[p.Name] = p
		}
		return len(out) == n
	})
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func waitFor(ctx context.Context, t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func httpOK(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", url, resp.StatusCode)
	}
	return nil
}

var (
	buildOnce   sync.Once
	builtBinary string
	buildErr    error
)

// localclusterBinary builds cmd/localcluster once per test run, so the tests exercise this checkout's
// code rather than whatever bin/localcluster holds.
func localclusterBinary(t *testing.T, root string) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "localcluster-test-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBinary = filepath.Join(dir, "localcluster")
		buildErr = localcluster.BuildLocalclusterBinary(context.Background(), builtBinary)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBinary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBinary != "" {
		_ = os.RemoveAll(filepath.Dir(builtBinary))
	}
	os.Exit(code)
}

func goBuild(t *testing.T, root, pkg, out string) string {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// dumpClusterState logs what a failure needs for diagnosis: pod states and the kubelet's last words.
func dumpClusterState(t *testing.T, c *localcluster.Cluster) {
	if list, err := c.Client().CoreV1().Pods("").List(context.Background(), metav1.ListOptions{}); err == nil {
		for _, p := range list.Items {
			var states []string
			for _, cs := range p.Status.ContainerStatuses {
				states = append(states, fmt.Sprintf("%s ready=%v restarts=%d state=%+v", cs.Name, cs.Ready, cs.RestartCount, cs.State))
			}
			t.Logf("pod %s/%s phase=%s ip=%s reason=%q %v", p.Namespace, p.Name, p.Status.Phase, p.Status.PodIP, p.Status.Reason, states)
		}
	}
	lines := strings.Split(readFile(filepath.Join(c.DataDir(), "logs", "kubelet.log")), "\n")
	t.Logf("last kubelet log lines:\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
}

// processesRunning lists the PIDs whose executable is bin.
func processesRunning(bin string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == bin {
			pids = append(pids, pid)
		}
	}
	return pids
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
