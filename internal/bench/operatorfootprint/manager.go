package operatorfootprint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
)

// managerProc is bin/manager running as a host process in a private mount namespace whose /etc/hosts maps
// the pods' node API names to the fake nodes. The namespace dies with the process, and with it the mount.
type managerProc struct {
	cmd        *exec.Cmd
	metricsURL string
	probeURL   string
	exited     chan struct{}
	waitErr    error
}

// startManager runs bin at kubeconfig with hostsFile bind-mounted over /etc/hosts, logging to logPath.
func startManager(bin, kubeconfig, hostsFile, logPath string) (*managerProc, error) {
	metricsAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	probeAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("cannot create manager log: %w", err)
	}
	defer logFile.Close()
	// unshare execs sh, which execs the manager: the PID the bench measures is the manager's own.
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`,
		hostsFile, bin,
		"--metrics-bind-address="+metricsAddr,
		"--health-probe-bind-address="+probeAddr,
		"--leader-elect=false")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The kernel kills the manager if the benchmark dies, so nothing is left running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", bin, err)
	}
	m := &managerProc{cmd: cmd, metricsURL: "http://" + metricsAddr + "/metrics", probeURL: "http://" + probeAddr + "/readyz", exited: make(chan struct{})}
	go func() {
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()
	return m, nil
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("cannot find a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (m *managerProc) pid() int { return m.cmd.Process.Pid }

// waitReady waits for the manager's readiness probe.
func (m *managerProc) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-m.exited:
			return fmt.Errorf("the manager exited: %v", m.waitErr)
		default:
		}
		if resp, err := hc.Get(m.probeURL); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager was not ready within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop asks the manager to stop and kills it if it does not within 15 s.
func (m *managerProc) stop() error {
	select {
	case <-m.exited:
		return nil
	default:
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("cannot signal the manager: %w", err)
	}
	select {
	case <-m.exited:
		return nil
	case <-time.After(15 * time.Second):
	}
	if err := m.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("cannot kill the manager: %w", err)
	}
	<-m.exited
	return errors.New("the manager did not stop within 15s of SIGTERM and was killed")
}

// procSample is what /proc says about the manager at one instant.
type procSample struct {
	at time.Time
	// cpu is user+system CPU time since the process started (utime+stime of /proc/<pid>/stat).
	cpu time.Duration
	// rss and hwm are VmRSS and VmHWM of /proc/<pid>/status, in bytes.
	rss, hwm uint64
}

func sampleProc(pid int) (procSample, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procSample{}, fmt.Errorf("cannot open /proc/%d: %w", pid, err)
	}
	now := time.Now()
	stat, err := p.Stat()
	if err != nil {
		return procSample{}, fmt.Errorf("cannot read /proc/%d/stat: %w", pid, err)
	}
	st, err := p.NewStatus()
	if err != nil {
		return procSample{}, fmt.Errorf("cannot read /proc/%d/status: %w", pid, err)
	}
	return procSample{at: now, cpu: time.Duration(stat.CPUTime() * float64(time.Second)), rss: st.VmRSS, hwm: st.VmHWM}, nil
}

// cpuPercent is the CPU used between two samples as a percentage of one core.
func cpuPercent(a, b procSample) float64 {
	wall := b.at.Sub(a.at)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(b.cpu-a.cpu) / float64(wall)
}

// managerMetrics are the figures read from the manager's metrics endpoint.
type managerMetrics struct {
	reconciles float64
	heapInuse  float64
	goroutines float64
}

// scrapeMetrics reads the reconcile count of the sequencercluster controller (all results), the Go heap in use
// and the goroutine count.
func scrapeMetrics(ctx context.Context, url string) (managerMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return managerMetrics{}, fmt.Errorf("cannot build metrics request: %w", err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return managerMetrics{}, fmt.Errorf("cannot scrape the manager's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return managerMetrics{}, fmt.Errorf("the manager's metrics endpoint answered %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return managerMetrics{}, fmt.Errorf("cannot parse the manager's metrics: %w", err)
	}
	return metricsFrom(families)
}

func metricsFrom(families map[string]*dto.MetricFamily) (managerMetrics, error) {
	var m managerMetrics
	rec, ok := families["controller_runtime_reconcile_total"]
	if !ok {
		return m, errors.New("the manager exports no controller_runtime_reconcile_total")
	}
	for _, s := range rec.GetMetric() {
		for _, l := range s.GetLabel() {
			if l.GetName() == "controller" && l.GetValue() == "sequencercluster" {
				m.reconciles += s.GetCounter().GetValue()
			}
		}
	}
	if f, ok := families["go_memstats_heap_inuse_bytes"]; ok && len(f.GetMetric()) > 0 {
		m.heapInuse = f.GetMetric()[0].GetGauge().GetValue()
	}
	if f, ok := families["go_goroutines"]; ok && len(f.GetMetric()) > 0 {
		m.goroutines = f.GetMetric()[0].GetGauge().GetValue()
	}
	return m, nil
}
