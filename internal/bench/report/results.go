// Package report turns seqbench's results into the table it prints, the JSON of raw results, and
// docs/benchmarks.md with its plots.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/internal/bench/commitpath"
	"github.com/seqops/sequencer-operator/internal/bench/encoding"
	"github.com/seqops/sequencer-operator/internal/bench/stats"
)

// Results is everything one run measured; it is written as JSON so runs can be compared.
type Results struct {
	Mode    string    `json:"mode"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Machine Machine   `json:"machine"`

	Failover      []stats.KillResult            `json:"failover,omitempty"`
	Floor         []stats.KillResult            `json:"floor,omitempty"`
	Switchover    *stats.SwitchResult           `json:"switchover,omitempty"`
	Fsync         *commitpath.FsyncResult       `json:"fsync,omitempty"`
	CommitLatency []commitpath.LatencyResult    `json:"commitLatency,omitempty"`
	Throughput    []commitpath.ThroughputResult `json:"throughput,omitempty"`
	Encoding      *encoding.Result              `json:"encoding,omitempty"`
	// Operator is the operator on the local control plane (issue 6, item 5).
	Operator *OperatorResults `json:"operator,omitempty"`

	Errors []string `json:"errors,omitempty"`
	// Warnings are findings about the system under test met while measuring (not benchmark failures).
	Warnings []string `json:"warnings,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU        string  `json:"cpu"`
	Cores      int     `json:"cores"`
	MemoryGiB  float64 `json:"memoryGiB"`
	Kernel     string  `json:"kernel"`
	Go         string  `json:"go"`
	Filesystem string  `json:"filesystem"`
	// LoadStart and LoadEnd are /proc/loadavg at the start and end of the run: the machine is
	// shared, and a busy machine shows in every figure.
	LoadStart string `json:"loadStart,omitempty"`
	LoadEnd   string `json:"loadEnd,omitempty"`
}

// LoadAvg is the first three fields of /proc/loadavg.
func LoadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// DescribeMachine reads /proc for the CPU, memory and kernel, and statfs for the work dir's filesystem.
func DescribeMachine(workDir string) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadStart: LoadAvg()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %f kB", &kb); err == nil {
			m.MemoryGiB = kb / (1 << 20)
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(data))
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(workDir, &st); err == nil {
		names := map[int64]string{0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs", 0x794c7630: "overlayfs"}
		name, ok := names[int64(st.Type)]
		if !ok {
			name = fmt.Sprintf("type 0x%x", st.Type)
		}
		m.Filesystem = name
	}
	return m
}

// WriteJSON writes the raw results.
func WriteJSON(r *Results, path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode results: %w", err)
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Merge adds the sections another run measured: a section src has replaces the same section here
// (the failover series by timing profile), so one part can be measured again without the rest.
func (r *Results) Merge(src *Results) {
	r.Failover = mergeKills(r.Failover, src.Failover)
	r.Floor = mergeKills(r.Floor, src.Floor)
	if src.Switchover != nil {
		r.Switchover = src.Switchover
	}
	if src.Fsync != nil {
		r.Fsync = src.Fsync
	}
	if len(src.CommitLatency) > 0 {
		r.CommitLatency = src.CommitLatency
	}
	if len(src.Throughput) > 0 {
		r.Throughput = src.Throughput
	}
	if src.Encoding != nil {
		r.Encoding = src.Encoding
	}
	if src.Operator != nil {
		if r.Operator == nil {
			r.Operator = &OperatorResults{}
		}
		if src.Operator.Live != nil {
			r.Operator.Live = src.Operator.Live
		}
		if src.Operator.Footprint != nil {
			r.Operator.Footprint = src.Operator.Footprint
		}
	}
	if src.Mode != r.Mode {
		r.Mode = r.Mode + "+" + src.Mode
	}
	r.Command = r.Command + "; " + src.Command
	r.Seconds += src.Seconds
	r.Machine.LoadEnd = src.Machine.LoadEnd
	r.Errors = append(r.Errors, src.Errors...)
	r.Warnings = append(r.Warnings, src.Warnings...)
}

func mergeKills(dst, src []stats.KillResult) []stats.KillResult {
	for _, s := range src {
		replaced := false
		for i := range dst {
			if dst[i].Timings.Name == s.Timings.Name {
				dst[i], replaced = s, true
			}
		}
		if !replaced {
			dst = append(dst, s)
		}
	}
	return dst
}
