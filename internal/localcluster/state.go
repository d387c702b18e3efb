package localcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// State is what `up` records in <data-dir>/state.json so that `down`, run by another process (even
// after `up` crashed), can find and remove everything: processes, pod namespaces and the bridge.
type State struct {
	// Processes in start order: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet.
	Processes   []ProcessRecord `json:"processes"`
	Bridge      string          `json:"bridge,omitempty"`
	PodCIDR     string          `json:"podCIDR,omitempty"`
	Gateway     string          `json:"gateway,omitempty"`
	NetnsPrefix string          `json:"netnsPrefix,omitempty"`
	// KubeletDir holds the kubelet's per-pod records and its list of mount points it created on the host.
	KubeletDir   string `json:"kubeletDir,omitempty"`
	APIServerURL string `json:"apiServerURL,omitempty"`
	Kubeconfig   string `json:"kubeconfig,omitempty"`
	NodeName     string `json:"nodeName,omitempty"`
	DataDir      string `json:"dataDir,omitempty"`
}

func statePath(dataDir string) string { return filepath.Join(dataDir, "state.json") }

func writeState(dataDir string, s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode cluster state: %w", err)
	}
	tmp := statePath(dataDir) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("cannot write cluster state: %w", err)
	}
	if err := os.Rename(tmp, statePath(dataDir)); err != nil {
		return fmt.Errorf("cannot write cluster state: %w", err)
	}
	register(s)
	return nil
}

// ReadState returns the recorded state of the cluster in dataDir, or an error wrapping os.ErrNotExist
// when nothing was started there.
func ReadState(dataDir string) (*State, error) {
	data, err := os.ReadFile(statePath(dataDir))
	if err != nil {
		return nil, fmt.Errorf("cannot read cluster state in %s: %w", dataDir, err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("cannot decode cluster state in %s: %w", dataDir, err)
	}
	return &s, nil
}

// ProcessStatus is one line of `localcluster status`.
type ProcessStatus struct {
	Name    string
	PID     int
	Running bool
	LogFile string
}

// Status reports which recorded processes still run.
func Status(dataDir string) (*State, []ProcessStatus, error) {
	s, err := ReadState(dataDir)
	if err != nil {
		return nil, nil, err
	}
	var out []ProcessStatus
	for _, p := range s.Processes {
		out = append(out, ProcessStatus{Name: p.Name, PID: p.PID, Running: p.Alive(), LogFile: p.LogFile})
	}
	return s, out, nil
}

func removeState(dataDir string) error {
	if err := os.Remove(statePath(dataDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot remove cluster state: %w", err)
	}
	return nil
}
