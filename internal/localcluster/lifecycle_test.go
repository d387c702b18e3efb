package localcluster_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/seqops/sequencer-operator/internal/localcluster"
	"github.com/seqops/sequencer-operator/internal/localcluster/podnet"
)

func needRoot(t *testing.T) string {
	t.Helper()
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 || !fileExists(filepath.Join(localcluster.DefaultBinDir(), "kube-apiserver")) {
		t.Skip("needs root and bin/k8s; run make k8s-bins and run as root (.ci/run does)")
	}
	return root
}

// TestUpInterrupted sends Ctrl-C (SIGINT) to `localcluster up` while it is starting and expects it to
// remove everything it had started.
func TestUpInterrupted(t *testing.T) {
	root := needRoot(t)
	bin := localclusterBinary(t, root)
	dataDir := filepath.Join(t.TempDir(), "cluster")
	cmd := exec.Command(bin, "up", "--data-dir", dataDir)
	cmd.Dir = root
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once the API server has been started, i.e. mid-way.
	var st *localcluster.State
	waitFor(context.Background(), t, "kube-apiserver to be started", 30*time.Second, func() bool {
		s, err := localcluster.ReadState(dataDir)
		if err == nil && len(s.Processes) >= 2 {
			st = s
			return true
		}
		return false
	})
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Log("up finished before the interrupt took effect; stopping it with down")
			if err := localcluster.Down(context.Background(), dataDir, logrDiscard()); err != nil {
				t.Fatal(err)
			}
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("up did not exit within 60s of SIGINT")
	}
	assertNothingLeft(t, dataDir, st)
}

// TestDownAfterCrash kills `up`'s whole side (the kubelet with SIGKILL, no clean-up) and expects a
// `down` from a fresh process to remove what is left, from the state file alone.
func TestDownAfterCrash(t *testing.T) {
	root := needRoot(t)
	bin := localclusterBinary(t, root)
	dataDir := filepath.Join(t.TempDir(), "cluster")
	out, err := exec.Command(bin, "up", "--data-dir", dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	st, err := localcluster.ReadState(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Processes {
		if p.Name == "kubelet" {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
			// The signal is delivered asynchronously; wait until the process is really gone.
			waitFor(context.Background(), t, "the kubelet to die", 10*time.Second, func() bool { return !p.Alive() })
		}
	}
	if out, err := exec.Command(bin, "status", "--data-dir", dataDir).CombinedOutput(); err == nil {
		t.Errorf("status reports a healthy cluster with its kubelet killed:\n%s", out)
	}
	if out, err := exec.Command(bin, "down", "--data-dir", dataDir).CombinedOutput(); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	assertNothingLeft(t, dataDir, st)
}

func assertNothingLeft(t *testing.T, dataDir string, st *localcluster.State) {
	t.Helper()
	if _, err := localcluster.ReadState(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left (err %v)", err)
	}
	for _, p := range st.Processes {
		if p.Alive() {
			t.Errorf("%s (pid %d) still runs", p.Name, p.PID)
		}
	}
	if st.Bridge != "" && podnet.LinkExists(st.Bridge) {
		t.Errorf("bridge %s left", st.Bridge)
	}
	if names, _ := podnet.ListNetns(st.NetnsPrefix); st.NetnsPrefix != "" && len(names) > 0 {
		t.Errorf("network namespaces left: %v", names)
	}
}

func logrDiscard() logr.Logger { return logr.Discard() }
