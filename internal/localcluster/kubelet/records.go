package kubelet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// mountpoints remembers directories (and files) the kubelet had to create on the host file system to
// serve as bind-mount targets (e.g. /data for a volume mounted there): they are not private to a mount
// namespace, so they are removed again at teardown. The list is host-wide (/run/localcluster), shared
// by every local cluster on the machine: removing a directory that is still a mount point in another
// cluster's pod would silently detach that pod's volume, so a path is only removed once no process on
// the host has anything mounted there, and the last cluster to go down removes it.
type mountpoints struct {
	mu sync.Mutex
}

// MountpointsDir holds the host-wide list of created mount points and its lock.
const MountpointsDir = "/run/localcluster"

func mountpointsFile() string { return filepath.Join(MountpointsDir, "created-mountpoints.json") }

// withMountpointsLock runs fn holding an exclusive flock, so clusters on one host do not race.
func withMountpointsLock(fn func() error) error {
	if err := os.MkdirAll(MountpointsDir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", MountpointsDir, err)
	}
	f, err := os.OpenFile(filepath.Join(MountpointsDir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open mount point lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("cannot lock mount point list: %w", err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck
	return fn()
}

func readMountpoints() ([]string, error) {
	data, err := os.ReadFile(mountpointsFile())
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

func writeMountpoints(paths []string) error {
	sort.Strings(paths)
	data, _ := json.Marshal(paths)
	return os.WriteFile(mountpointsFile(), data, 0o644)
}

func (m *mountpoints) add(paths ...string) error {
	if len(paths) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return withMountpointsLock(func() error {
		existing, err := readMountpoints()
		if err != nil {
			return err
		}
		set := map[string]bool{}
		for _, p := range append(existing, paths...) {
			set[p] = true
		}
		all := make([]string, 0, len(set))
		for p := range set {
			all = append(all, p)
		}
		return writeMountpoints(all)
	})
}

// ReadCreatedMountpoints lists the host paths local clusters created as mount targets.
func ReadCreatedMountpoints() ([]string, error) {
	var paths []string
	err := withMountpointsLock(func() error {
		var err error
		paths, err = readMountpoints()
		return err
	})
	return paths, err
}

// RemoveCreatedMountpoints removes the recorded paths that no process on the host still mounts
// something at (deepest first, directories only when empty) and forgets them; when none is left it
// removes /run/localcluster too.
func RemoveCreatedMountpoints() error {
	err := withMountpointsLock(func() error {
		paths, err := readMountpoints()
		if err != nil {
			return err
		}
		inUse := mountTargetsInUse()
		sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
		var keep []string
		for _, p := range paths {
			if inUse[p] {
				keep = append(keep, p)
				continue
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				// Not empty: something else uses it now; leave it and forget it.
				continue
			}
		}
		if len(keep) > 0 {
			return writeMountpoints(keep)
		}
		if err := os.Remove(mountpointsFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot remove created mount points list: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Last one out removes the directory; a concurrent add simply recreates it.
	_ = os.Remove(filepath.Join(MountpointsDir, "lock"))
	_ = os.Remove(MountpointsDir)
	return nil
}

// mountTargetsInUse collects the mount points of every mount namespace on the host.
func mountTargetsInUse() map[string]bool {
	out := map[string]bool{}
	seen := map[uint64]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "mnt"), &st) != nil || seen[st.Ino] {
			continue
		}
		seen[st.Ino] = true
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "mountinfo"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) > 4 {
				out[unescapeMountPath(f[4])] = true
			}
		}
	}
	return out
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
