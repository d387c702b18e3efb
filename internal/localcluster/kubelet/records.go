package kubelet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// PodRecord is what the kubelet publishes about a running pod, so that tests (in another process) can
// inject faults: signal a container's process, cut the pod's link, run a command in its namespace.
type PodRecord struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	IP        string `json:"ip"`
	Netns     string `json:"netns"`
	HostVeth  string `json:"hostVeth"`
	// Containers maps container name to the PID of its current process (0 while not running).
	Containers map[string]int `json:"containers"`
	// LogDir holds <container>/<restart>.log files.
	LogDir string `json:"logDir"`
	// HostsFile is the pod's /etc/hosts as seen from the host.
	HostsFile string `json:"hostsFile"`
}

func recordPath(dir, namespace, name string) string {
	return filepath.Join(dir, "records", namespace+"_"+name+".json")
}

// ReadPodRecord returns the kubelet's record of the pod namespace/name; kubeletDir is Config.Dir.
func ReadPodRecord(kubeletDir, namespace, name string) (*PodRecord, error) {
	data, err := os.ReadFile(recordPath(kubeletDir, namespace, name))
	if err != nil {
		return nil, fmt.Errorf("cannot read record of pod %s/%s: %w", namespace, name, err)
	}
	var r PodRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("cannot decode record of pod %s/%s: %w", namespace, name, err)
	}
	return &r, nil
}

func writePodRecord(dir string, r *PodRecord) error {
	p := recordPath(dir, r.Namespace, r.Name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("cannot create records dir: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode record of pod %s/%s: %w", r.Namespace, r.Name, err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("cannot write record of pod %s/%s: %w", r.Namespace, r.Name, err)
	}
	return os.Rename(tmp, p)
}

func removePodRecord(dir, namespace, name, uid string) {
	if r, err := ReadPodRecord(dir, namespace, name); err == nil && r.UID != uid {
		return // a newer pod of the same name already wrote its record
	}
	_ = os.Remove(recordPath(dir, namespace, name))
}

// mountpoints remembers directories the kubelet had to create on the host file system to serve as
// bind-mount targets (e.g. /data for a volume mounted there): directories are not private to a mount
// namespace, so they are removed again (when empty) at teardown.
type mountpoints struct {
	mu   sync.Mutex
	file string
}

func mountpointsFile(dir string) string { return filepath.Join(dir, "created-mountpoints.json") }

func (m *mountpoints) add(paths ...string) error {
	if len(paths) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	existing, _ := ReadCreatedMountpoints(filepath.Dir(m.file))
	set := map[string]bool{}
	for _, p := range append(existing, paths...) {
		set[p] = true
	}
	var all []string
	for p := range set {
		all = append(all, p)
	}
	sort.Strings(all)
	data, _ := json.Marshal(all)
	return os.WriteFile(m.file, data, 0o644)
}

// ReadCreatedMountpoints lists the host directories the kubelet created as mount targets.
func ReadCreatedMountpoints(kubeletDir string) ([]string, error) {
	data, err := os.ReadFile(mountpointsFile(kubeletDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read created mount points: %w", err)
	}
	var paths []string
	if err := json.Unmarshal(data, &paths); err != nil {
		return nil, fmt.Errorf("cannot decode created mount points: %w", err)
	}
	return paths, nil
}

// RemoveCreatedMountpoints removes the recorded directories that are empty, deepest first, and
// forgets them. A directory that something else filled is left alone.
func RemoveCreatedMountpoints(kubeletDir string) error {
	paths, err := ReadCreatedMountpoints(kubeletDir)
	if err != nil {
		return err
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	for _, p := range paths {
		_ = os.Remove(p) // only succeeds when empty, which is the point
	}
	if err := os.Remove(mountpointsFile(kubeletDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot remove created mount points list: %w", err)
	}
	return nil
}
