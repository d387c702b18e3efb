package kubelet

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"time"

	"github.com/seqops/sequencer-operator/internal/localcluster/podnet"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// runProbes drives started/ready from the startup, readiness and liveness probes of one run of the
// container, and restarts the container when liveness (or startup) fails failureThreshold times in a
// row. stop is closed when the process ends.
func (c *containerRuntime) runProbes(pid int, stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(c.pr.ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if p := c.spec.StartupProbe; p != nil {
		if !c.probeUntil(ctx, p, pid, true) {
			if ctx.Err() == nil {
				c.failed("Startup", pid)
			}
			return
		}
		c.pr.mu.Lock()
		c.started = true
		c.ready = c.spec.ReadinessProbe == nil
		c.pr.mu.Unlock()
		c.pr.notify()
	}
	if p := c.spec.ReadinessProbe; p != nil {
		go c.readinessLoop(ctx, p, pid)
	}
	if p := c.spec.LivenessProbe; p != nil {
		if !c.probeUntil(ctx, p, pid, false) && ctx.Err() == nil {
			c.failed("Liveness", pid)
		}
	}
}

// probeUntil runs p every period. With untilSuccess it returns true at the first success (startup
// probe); otherwise it runs until failureThreshold consecutive failures and returns false (liveness).
func (c *containerRuntime) probeUntil(ctx context.Context, p *corev1.Probe, pid int, untilSuccess bool) bool {
	if !sleepCtx(ctx, time.Duration(p.InitialDelaySeconds)*time.Second) {
		return false
	}
	failures := 0
	for {
		err := c.probe(ctx, p, pid)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			failures = 0
			if untilSuccess {
				return true
			}
		} else {
			failures++
			if failures >= int(threshold(p.FailureThreshold, 3)) {
				c.pr.log.Info("Probe failed", "container", c.spec.Name, "failures", failures, "error", err.Error())
				return false
			}
		}
		if !sleepCtx(ctx, period(p)) {
			return false
		}
	}
}

func (c *containerRuntime) readinessLoop(ctx context.Context, p *corev1.Probe, pid int) {
	if !sleepCtx(ctx, time.Duration(p.InitialDelaySeconds)*time.Second) {
		return
	}
	successes, failures := 0, 0
	for {
		err := c.probe(ctx, p, pid)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		c.pr.mu.Lock()
		was := c.ready
		switch {
		case successes >= int(threshold(p.SuccessThreshold, 1)):
			c.ready = c.started
		case failures >= int(threshold(p.FailureThreshold, 3)):
			c.ready = false
		}
		changed := was != c.ready
		c.pr.mu.Unlock()
		if changed {
			c.pr.notify()
		}
		if !sleepCtx(ctx, period(p)) {
			return
		}
	}
}

// failed restarts the container after a failed liveness or startup probe, as the kubelet does.
func (c *containerRuntime) failed(kind string, pid int) {
	msg := fmt.Sprintf("Container %s failed %s probe, will be restarted", c.spec.Name, kind)
	c.pr.p.recordEvent(c.pr.pod, corev1.EventTypeWarning, "Unhealthy", msg)
	grace := 30 * time.Second
	if g := c.pr.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	c.terminate(grace)
}

// probe runs one check. HTTP and TCP checks connect from inside the pod's network namespace to the
// pod's IP, so cutting the pod off the network (a partition between pods) does not also fail its
// liveness, just as a real kubelet's probes are not affected by a partition between nodes.
func (c *containerRuntime) probe(ctx context.Context, p *corev1.Probe, pid int) error {
	timeout := time.Duration(threshold(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pr := c.pr
	netns := pr.net.NetnsPath()
	switch {
	case p.HTTPGet != nil:
		h := p.HTTPGet
		port, err := c.resolvePort(h.Port)
		if err != nil {
			return err
		}
		host := h.Host
		if host == "" {
			host = pr.net.IP.String()
		}
		scheme := "http"
		if h.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		client := &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return podnet.DialContext(ctx, netns, network, addr)
			},
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet probes skip verification too
			DisableKeepAlives: true,
		}}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), h.Path), nil)
		if err != nil {
			return err
		}
		for _, hd := range h.HTTPHeaders {
			req.Header.Add(hd.Name, hd.Value)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe answered %d", resp.StatusCode)
		}
		return nil
	case p.TCPSocket != nil:
		port, err := c.resolvePort(p.TCPSocket.Port)
		if err != nil {
			return err
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = pr.net.IP.String()
		}
		conn, err := podnet.DialContext(ctx, netns, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	case p.Exec != nil:
		args := append([]string{"--target", strconv.Itoa(pid), "--mount", "--net", "--uts", "--"}, p.Exec.Command...)
		out, err := exec.CommandContext(ctx, "nsenter", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("exec probe failed: %w: %s", err, out)
		}
		return nil
	}
	return fmt.Errorf("unsupported probe handler (only httpGet, tcpSocket and exec)")
}

func (c *containerRuntime) resolvePort(p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.spec.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.spec.Name, p.StrVal)
}

func threshold(v int32, def int32) int32 {
	if v <= 0 {
		return def
	}
	return v
}

func period(p *corev1.Probe) time.Duration {
	return time.Duration(threshold(p.PeriodSeconds, 10)) * time.Second
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
