package kubelet

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/internal/localcluster/launcher"
	"github.com/seqops/sequencer-operator/internal/localcluster/spawner"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// containerRuntime supervises one container: starts its process through the launcher, restarts it
// with back-off according to the pod's restart policy, and runs its probes. Fields below spec are
// guarded by the pod's mu.
type containerRuntime struct {
	pr     *podRuntime
	spec   corev1.Container
	init   bool
	binary string

	pid         int
	exited      chan struct{} // closed when the current process ends
	running     *corev1.ContainerStateRunning
	terminated  *corev1.ContainerStateTerminated
	lastTerm    *corev1.ContainerStateTerminated
	waiting     *corev1.ContainerStateWaiting
	restarts    int32
	started     bool // startup probe passed (or none)
	ready       bool
	everStarted bool
}

func newContainerRuntime(pr *podRuntime, spec corev1.Container, init bool) *containerRuntime {
	return &containerRuntime{pr: pr, spec: spec, init: init}
}

// supervise runs the container until the pod stops or the restart policy says it is done.
func (c *containerRuntime) supervise() {
	policy := c.pr.pod.Spec.RestartPolicy
	backoff := c.pr.p.cfg.RestartBackoffBase.Duration
	for {
		began := time.Now()
		exitCode, err := c.runOnce()
		if err != nil {
			c.pr.log.Error(err, "Cannot start container", "container", c.spec.Name)
			c.setWaiting("RunContainerError", err.Error())
		}
		if c.pr.isStopping() {
			return
		}
		restart := policy == corev1.RestartPolicyAlways || policy == "" ||
			(policy == corev1.RestartPolicyOnFailure && (exitCode != 0 || err != nil))
		if !restart {
			return
		}
		// A container that ran well for a while starts a fresh back-off, like the kubelet's.
		if time.Since(began) > 2*c.pr.p.cfg.RestartBackoffMax.Duration {
			backoff = c.pr.p.cfg.RestartBackoffBase.Duration
		}
		c.pr.mu.Lock()
		c.restarts++
		c.pr.mu.Unlock()
		msg := fmt.Sprintf("back-off %s restarting failed container %s", backoff, c.spec.Name)
		if err != nil {
			msg += ": " + err.Error()
		}
		c.setWaiting("CrashLoopBackOff", msg)
		select {
		case <-c.pr.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, c.pr.p.cfg.RestartBackoffMax.Duration)
	}
}

// runToCompletion runs an init container until it exits 0 (retrying failures unless the policy is
// Never). It reports whether the pod may go on.
func (c *containerRuntime) runToCompletion() bool {
	backoff := c.pr.p.cfg.RestartBackoffBase.Duration
	for {
		exitCode, err := c.runOnce()
		if c.pr.isStopping() {
			return false
		}
		if err == nil && exitCode == 0 {
			return true
		}
		if c.pr.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			return false
		}
		c.pr.mu.Lock()
		c.restarts++
		c.pr.mu.Unlock()
		c.setWaiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed init container %s", backoff, c.spec.Name))
		select {
		case <-c.pr.ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, c.pr.p.cfg.RestartBackoffMax.Duration)
	}
}

// runOnce starts the process, runs probes while it lives and records how it ended.
func (c *containerRuntime) runOnce() (int, error) {
	if c.pr.isStopping() {
		return 0, nil
	}
	cmd, err := c.start()
	if err != nil {
		return -1, err
	}
	if err := launched(cmd); err != nil {
		_ = cmd.Wait()
		return -1, err
	}
	started := metav1.Now()
	exited := make(chan struct{})
	c.pr.mu.Lock()
	c.pid = cmd.Process.Pid
	c.exited = exited
	c.running = &corev1.ContainerStateRunning{StartedAt: started}
	c.waiting, c.terminated = nil, nil
	c.everStarted = true
	c.started = c.spec.StartupProbe == nil
	c.ready = c.spec.ReadinessProbe == nil && c.started && !c.init
	c.pr.mu.Unlock()
	c.pr.writeRecord()
	c.pr.log.Info("Started container", "container", c.spec.Name, "pid", cmd.Process.Pid, "restarts", c.restarts)
	c.pr.notify()

	probeCtxDone := make(chan struct{})
	if !c.init {
		go c.runProbes(cmd.Process.Pid, probeCtxDone)
	}
	waitErr := cmd.Wait()
	close(probeCtxDone)
	close(exited)

	exitCode, reason := 0, "Completed"
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			exitCode = 128 + int(ws.Signal())
		} else {
			exitCode = ee.ExitCode()
		}
		reason = "Error"
	} else if waitErr != nil {
		exitCode, reason = -1, "Error"
	}
	msgFile := ""
	if c.spec.TerminationMessagePath != "" {
		msgFile = c.terminationFile()
	}
	term := &corev1.ContainerStateTerminated{ExitCode: int32(exitCode), Reason: reason, StartedAt: started, FinishedAt: metav1.Now(), ContainerID: containerID(cmd.Process.Pid),
		Message: terminationMessage(msgFile, c.logPath(c.restarts), c.spec.TerminationMessagePolicy, exitCode)}
	c.pr.mu.Lock()
	c.pid = 0
	c.running = nil
	c.terminated = term
	c.lastTerm = term
	c.started, c.ready = false, false
	c.pr.mu.Unlock()
	c.pr.writeRecord()
	c.pr.log.Info("Container exited", "container", c.spec.Name, "exitCode", exitCode)
	c.pr.notify()
	return exitCode, nil
}

// start builds the launch spec (argv, env, mounts) and starts the launcher in new mount and UTS
// namespaces and its own process group.
func (c *containerRuntime) start() (*exec.Cmd, error) {
	pr := c.pr
	env, vars, err := buildEnv(pr.pod, &c.spec, pr.net.IP.String(), pr.baseEnv(), pr.p)
	if err != nil {
		return nil, err
	}
	argv, err := containerArgv(c.spec, c.binary, vars)
	if err != nil {
		return nil, err
	}
	spec := &launcher.Spec{Netns: pr.net.NetnsPath(), Hostname: podHostname(pr.pod), Argv: argv, Env: env, WorkDir: c.spec.WorkingDir}
	hostsMounted := false
	for _, m := range c.spec.VolumeMounts {
		src := pr.vols.paths[m.Name]
		if m.SubPath != "" {
			src = filepath.Join(src, m.SubPath)
			if err := os.MkdirAll(src, 0o777); err != nil && !errors.Is(err, syscall.ENOTDIR) {
				return nil, fmt.Errorf("cannot create subPath %s: %w", src, err)
			}
		}
		if m.MountPath == "/etc/hosts" {
			hostsMounted = true
		}
		ro := m.ReadOnly
		for _, v := range pr.pod.Spec.Volumes {
			if v.Name == m.Name && (v.ConfigMap != nil || v.Secret != nil || v.Projected != nil || v.DownwardAPI != nil) {
				ro = true
			}
		}
		spec.Mounts = append(spec.Mounts, launcher.Mount{Source: src, Target: m.MountPath, ReadOnly: ro})
	}
	if t := c.spec.TerminationMessagePath; t != "" {
		if err := resetTerminationFile(c.terminationFile()); err != nil {
			return nil, err
		}
		spec.Mounts = append(spec.Mounts, launcher.Mount{Source: c.terminationFile(), Target: t})
	}
	if !hostsMounted {
		spec.Mounts = append(spec.Mounts, launcher.Mount{Source: filepath.Join(pr.dir, "hosts"), Target: "/etc/hosts", ReadOnly: true})
	}
	hostnameFile := filepath.Join(pr.dir, "hostname")
	if err := os.WriteFile(hostnameFile, []byte(podHostname(pr.pod)+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("cannot write hostname file: %w", err)
	}
	if fileExists("/etc/hostname") {
		spec.Mounts = append(spec.Mounts, launcher.Mount{Source: hostnameFile, Target: "/etc/hostname", ReadOnly: true})
	}
	for i, m := range spec.Mounts {
		if belowEarlierMount(spec.Mounts[:i], m.Target) {
			continue // the launcher creates it inside that volume, not on the host
		}
		created, err := launcher.EnsureTarget(m.Source, m.Target)
		if err != nil {
			return nil, err
		}
		if err := pr.p.mounts.add(created...); err != nil {
			return nil, fmt.Errorf("cannot record created mount points: %w", err)
		}
	}
	specFile := filepath.Join(pr.dir, "launch-"+c.spec.Name+".json")
	if err := launcher.Write(specFile, spec); err != nil {
		return nil, err
	}
	logFile := c.logPath(c.restarts)
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create log dir: %w", err)
	}
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open container log: %w", err)
	}
	defer out.Close()
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("cannot create launch pipe: %w", err)
	}
	defer syncW.Close()
	cmd := exec.Command(pr.p.cfg.Launcher, "launch", "--spec", specFile)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(env, launcher.SyncFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{syncW}
	launchPipes.Store(cmd, syncR)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:      true,
		Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
	}
	start := cmd.Start
	if pr.p.cfg.DieWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		start = func() error { return spawner.Start(cmd) }
	}
	if err := start(); err != nil {
		launchPipes.Delete(cmd)
		_ = syncR.Close()
		return nil, fmt.Errorf("cannot start launcher for container %s: %w", c.spec.Name, err)
	}
	return cmd, nil
}

// launchPipes holds the read end of each started launcher's sync pipe until launched reads it.
var launchPipes sync.Map // *exec.Cmd -> *os.File

// launched waits until the launcher has exec'd the container binary: the write end of the sync pipe is
// close-on-exec in the launcher, so EOF with nothing read means the exec happened, and a message means
// the launch failed (a mount, the namespace). Only then is the container running: before, its
// volumes may not be mounted yet.
func launched(cmd *exec.Cmd) error {
	v, ok := launchPipes.LoadAndDelete(cmd)
	if !ok {
		return nil
	}
	r := v.(*os.File)
	defer r.Close()
	_ = r.SetReadDeadline(time.Now().Add(30 * time.Second))
	msg, err := io.ReadAll(r)
	if len(msg) > 0 {
		return fmt.Errorf("cannot launch container: %s", strings.TrimSpace(string(msg)))
	}
	if err != nil {
		signalGroup(cmd.Process.Pid, syscall.SIGKILL)
		return fmt.Errorf("launcher did not exec the container within 30s: %w", err)
	}
	return nil
}

func belowEarlierMount(earlier []launcher.Mount, target string) bool {
	for _, e := range earlier {
		if strings.HasPrefix(filepath.Clean(target), strings.TrimSuffix(filepath.Clean(e.Target), "/")+"/") {
			return true
		}
	}
	return false
}

func (c *containerRuntime) logPath(restart int32) string {
	return filepath.Join(c.pr.dir, "logs", c.spec.Name, fmt.Sprintf("%d.log", restart))
}

// containerArgv decides what to exec. The image's binary is the entrypoint; a command whose first word
// names that binary (e.g. "/manager" for bin/manager) or is not a program on this host is taken as the
// image's entrypoint too, with its remaining words as arguments. A command naming a host program
// (sh, cat) runs that program.
func containerArgv(c corev1.Container, binary string, vars map[string]string) ([]string, error) {
	cmd := make([]string, len(c.Command))
	for i, s := range c.Command {
		cmd[i] = expand(s, vars)
	}
	args := make([]string, len(c.Args))
	for i, s := range c.Args {
		args[i] = expand(s, vars)
	}
	if len(cmd) == 0 {
		return append([]string{binary}, args...), nil
	}
	if filepath.Base(cmd[0]) == filepath.Base(binary) {
		return append(append([]string{binary}, cmd[1:]...), args...), nil
	}
	if p, err := exec.LookPath(cmd[0]); err == nil && !strings.HasPrefix(cmd[0], "./") {
		abs, _ := filepath.Abs(p)
		return append(append([]string{abs}, cmd[1:]...), args...), nil
	}
	return append(append([]string{binary}, cmd[1:]...), args...), nil
}

// terminate stops the current process: SIGTERM, then SIGKILL after grace.
func (c *containerRuntime) terminate(grace time.Duration) {
	c.pr.mu.Lock()
	pid, exited := c.pid, c.exited
	c.pr.mu.Unlock()
	if pid <= 0 || exited == nil {
		return
	}
	signalGroup(pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		c.pr.log.Info("Grace period over, killing container", "container", c.spec.Name, "pid", pid)
		signalGroup(pid, syscall.SIGKILL)
		<-exited
	}
}

func (c *containerRuntime) setWaiting(reason, msg string) {
	c.pr.mu.Lock()
	c.waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
	c.terminated = nil
	c.pr.mu.Unlock()
	c.pr.notify()
}

// status is the container's status; podReason/podMessage explain a pod that could not start at all.
// Called with the pod's mu held.
func (c *containerRuntime) status(podReason, podMessage string) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{
		Name: c.spec.Name, Image: c.spec.Image, ImageID: "localcluster://" + c.binary,
		RestartCount: c.restarts, Ready: c.ready,
	}
	started := c.started
	cs.Started = &started
	if c.lastTerm != nil && (c.running != nil || c.waiting != nil) {
		cs.LastTerminationState.Terminated = c.lastTerm.DeepCopy()
	}
	switch {
	case c.running != nil:
		cs.State.Running = c.running.DeepCopy()
		cs.ContainerID = containerID(c.pid)
	case c.waiting != nil:
		cs.State.Waiting = c.waiting.DeepCopy()
	case c.terminated != nil:
		cs.State.Terminated = c.terminated.DeepCopy()
		cs.ContainerID = c.terminated.ContainerID
	case podReason != "":
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: podReason, Message: podMessage}
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	if c.pr.stopping && cs.State.Running == nil && cs.State.Terminated == nil {
		// A deleted pod must end with every container terminated, or the pod controller keeps waiting.
		cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", FinishedAt: metav1.Now()}}
	}
	return cs
}

func containerID(pid int) string { return fmt.Sprintf("localcluster://%d", pid) }

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
