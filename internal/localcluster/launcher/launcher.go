// Package launcher is the last step between the process kubelet and a container's binary. The kubelet
// starts `localcluster launch --spec <file>` already inside a fresh mount and UTS namespace (through
// SysProcAttr.Unshareflags, which also makes the mount tree private); the launcher bind-mounts the pod's
// volumes and hosts file, sets the hostname, joins the pod's network namespace and execs the binary, so
// the container's PID is the launcher's PID.
package launcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Mount is one bind mount into the container's mount namespace.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly"`
}

// Spec is what the kubelet hands the launcher.
type Spec struct {
	Netns    string   `json:"netns"` // path, e.g. /run/netns/lc-0-abc
	Hostname string   `json:"hostname"`
	Mounts   []Mount  `json:"mounts"`
	WorkDir  string   `json:"workDir,omitempty"`
	Argv     []string `json:"argv"` // Argv[0] is an absolute path
	Env      []string `json:"env"`
}

// Write stores spec in file for a later Run.
func Write(file string, spec *Spec) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("cannot encode launch spec: %w", err)
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return fmt.Errorf("cannot write launch spec: %w", err)
	}
	return nil
}

// SyncFDEnv names the environment variable that gives the launcher the file descriptor of its sync
// pipe to the kubelet. The launcher marks it close-on-exec, so the kubelet reads EOF exactly when the
// container's binary replaced the launcher, or the error message when the launch failed.
const SyncFDEnv = "LOCALCLUSTER_LAUNCH_SYNC_FD"

// Run performs the launch described in specFile. It returns only on error, which it also reports
// through the sync pipe when there is one.
func Run(specFile string) error {
	syncFD := -1
	if v := os.Getenv(SyncFDEnv); v != "" {
		if fd, err := strconv.Atoi(v); err == nil {
			syncFD = fd
			unix.CloseOnExec(fd)
		}
	}
	err := run(specFile)
	if syncFD >= 0 {
		_, _ = unix.Write(syncFD, []byte(err.Error()))
	}
	return err
}

func run(specFile string) error {
	data, err := os.ReadFile(specFile)
	if err != nil {
		return fmt.Errorf("cannot read launch spec: %w", err)
	}
	var spec Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("cannot decode launch spec %s: %w", specFile, err)
	}
	if len(spec.Argv) == 0 {
		return errors.New("launch spec has no argv")
	}
	// setns(CLONE_NEWNET) applies to the calling thread; exec from that same thread carries it into
	// the new program.
	runtime.LockOSThread()
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("cannot set hostname %q: %w", spec.Hostname, err)
		}
	}
	// Every source is opened before anything is mounted and mounted through /proc/self/fd: a volume
	// mounted over a directory (an emptyDir at /tmp) would otherwise hide the sources of later mounts
	// that live below it (a data dir under /tmp).
	// The binary too: a repository under /tmp (a CI clone) has its bin/ hidden by a pod's /tmp volume.
	binary, err := unix.Open(spec.Argv[0], unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cannot exec %s: %w", spec.Argv[0], err)
	}
	sources := make([]int, len(spec.Mounts))
	for i, m := range spec.Mounts {
		fd, err := unix.Open(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("cannot open volume source %s: %w", m.Source, err)
		}
		sources[i] = fd
	}
	for i, m := range spec.Mounts {
		if err := bindMount(fmt.Sprintf("/proc/self/fd/%d", sources[i]), m); err != nil {
			return err
		}
		_ = unix.Close(sources[i])
	}
	if spec.Netns != "" {
		fd, err := unix.Open(spec.Netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("cannot open network namespace %s: %w", spec.Netns, err)
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("cannot join network namespace %s: %w", spec.Netns, err)
		}
		_ = unix.Close(fd)
	}
	if spec.WorkDir != "" {
		if err := os.Chdir(spec.WorkDir); err != nil {
			return fmt.Errorf("cannot change to working dir %s: %w", spec.WorkDir, err)
		}
	}
	env := make([]string, 0, len(spec.Env))
	for _, kv := range spec.Env {
		if !strings.HasPrefix(kv, SyncFDEnv+"=") {
			env = append(env, kv)
		}
	}
	// Exec through the descriptor opened before the mounts; argv[0] keeps the binary's real path.
	if err := syscall.Exec(fmt.Sprintf("/proc/self/fd/%d", binary), spec.Argv, env); err != nil {
		return fmt.Errorf("cannot exec %s: %w", spec.Argv[0], err)
	}
	return nil
}

func bindMount(source string, m Mount) error {
	// The kubelet created the target on the host beforehand (and records what it made). A target that
	// is missing now lies below an earlier mount of this container (a volume at /tmp, another at
	// /tmp/x), so creating it writes into that volume, not into the host.
	if _, err := os.Stat(m.Target); errors.Is(err, os.ErrNotExist) {
		st, err := os.Stat(source)
		if err != nil {
			return fmt.Errorf("cannot stat volume source %s: %w", m.Source, err)
		}
		if st.IsDir() {
			err = os.MkdirAll(m.Target, 0o755)
		} else if err = os.MkdirAll(filepath.Dir(m.Target), 0o755); err == nil {
			err = os.WriteFile(m.Target, nil, 0o644)
		}
		if err != nil {
			return fmt.Errorf("cannot create mount target %s: %w", m.Target, err)
		}
	} else if err != nil {
		return fmt.Errorf("cannot stat mount target %s: %w", m.Target, err)
	}
	if err := unix.Mount(source, m.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("cannot bind-mount %s at %s: %w", m.Source, m.Target, err)
	}
	if m.ReadOnly {
		if err := unix.Mount("", m.Target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("cannot make %s read-only: %w", m.Target, err)
		}
	}
	return nil
}

// EnsureTarget creates the mount target for source (a directory for a directory, an empty file for a
// file) and returns the directories it had to create, outermost first, so they can be removed later.
func EnsureTarget(source, target string) ([]string, error) {
	st, err := os.Stat(source)
	if err != nil {
		return nil, fmt.Errorf("cannot stat volume source %s: %w", source, err)
	}
	dir := target
	if !st.IsDir() {
		dir = filepath.Dir(target)
	}
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append([]string{d}, created...)
		if d == "/" || d == "." {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create mount point %s: %w", dir, err)
	}
	if !st.IsDir() {
		if _, err := os.Stat(target); errors.Is(err, os.ErrNotExist) {
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return created, fmt.Errorf("cannot create mount point %s: %w", target, err)
			}
			_ = f.Close()
			created = append(created, target)
		}
	}
	return created, nil
}
