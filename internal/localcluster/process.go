package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/internal/localcluster/spawner"
)

// ProcessRecord identifies a process the cluster started. The start time (from /proc/<pid>/stat) guards
// against signalling an unrelated process that reused the PID after a crash.
type ProcessRecord struct {
	Name      string `json:"name"`
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	LogFile   string `json:"logFile"`
}

// startProcess starts argv in its own process group with output to logFile. With dieWithParent the
// kernel kills it if the starting process dies, so a crashed test leaves no control plane behind.
func startProcess(name, logFile string, dieWithParent bool, argv []string, env []string) (*exec.Cmd, ProcessRecord, error) {
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, ProcessRecord{}, fmt.Errorf("cannot open log file for %s: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if dieWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	start := cmd.Start
	if dieWithParent {
		start = func() error { return spawner.Start(cmd) }
	}
	if err := start(); err != nil {
		return nil, ProcessRecord{}, fmt.Errorf("cannot start %s: %w", name, err)
	}
	st, _ := processStartTime(cmd.Process.Pid)
	return cmd, ProcessRecord{Name: name, PID: cmd.Process.Pid, StartTime: st, LogFile: logFile}, nil
}

// processStartTime reads field 22 of /proc/<pid>/stat (start time in clock ticks since boot).
func processStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after it start past the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, errors.New("short stat")
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// Alive reports whether the recorded process still runs (and is the same process, not a zombie).
func (r ProcessRecord) Alive() bool {
	st, err := processStartTime(r.PID)
	if err != nil {
		return false
	}
	if r.StartTime != 0 && st != r.StartTime {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.PID))
	if err != nil {
		return false
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 && s[i+2] == 'Z' {
		return false
	}
	return true
}

// stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs the group.
func (r ProcessRecord) stop(grace time.Duration) {
	if !r.Alive() {
		return
	}
	_ = syscall.Kill(-r.PID, syscall.SIGTERM)
	_ = syscall.Kill(r.PID, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !r.Alive() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-r.PID, syscall.SIGKILL)
	_ = syscall.Kill(r.PID, syscall.SIGKILL)
	for i := 0; i < 100 && r.Alive(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

func runCombined(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}
