package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/seqops/sequencer-operator/internal/bench/commitpath"
	"github.com/seqops/sequencer-operator/internal/bench/encoding"
	"github.com/seqops/sequencer-operator/internal/bench/failover"
	"github.com/seqops/sequencer-operator/internal/bench/floor"
	"github.com/seqops/sequencer-operator/internal/bench/operatorfootprint"
	"github.com/seqops/sequencer-operator/internal/bench/operatorlive"
	"github.com/seqops/sequencer-operator/internal/bench/report"
	"github.com/seqops/sequencer-operator/internal/bench/stats"
)

// settings are the flags every benchmark command shares.
type settings struct {
	quick, full bool
	out, json   string
	plots       string
	nodeBin     string
	workDir     string
	keep        bool
	kills       int
	profiles    []string
	timeout     time.Duration
	cpuprofile  string
	// Overrides of the operator benchmark's sizes (0: the run's default).
	historyBlocks uint64
	clusters      int
}

// plan is the size of a run.
type plan struct {
	kills, switches   int
	quiet             time.Duration
	load              int
	latencyWindow     time.Duration
	throughputWindow  time.Duration
	blockSizes        []int
	encodingBenchtime string
	// The operator's figures: leader kills, blocks of history before a member joins, fake clusters and the
	// steady window of the footprint.
	operatorKills   int
	historyBlocks   uint64
	clusters        int
	footprintWindow time.Duration
}

func (s settings) plan() plan {
	if s.full {
		return plan{kills: 30, switches: 20, quiet: time.Second, load: 200, latencyWindow: 10 * time.Second,
			throughputWindow: 8 * time.Second, blockSizes: []int{1000, 2500, 5000, 10000, 20000}, encodingBenchtime: "2s",
			operatorKills: operatorlive.FullFailovers, historyBlocks: operatorlive.IssueHistoryBlocks, clusters: 100, footprintWindow: time.Minute}
	}
	// Quick: under five minutes for the whole run, operator part included (CI runs it).
	return plan{kills: 4, switches: 4, quiet: 500 * time.Millisecond, load: 200, latencyWindow: 3 * time.Second,
		throughputWindow: 3 * time.Second, blockSizes: []int{1000, 5000, 10000}, encodingBenchtime: "500ms",
		operatorKills: 2, historyBlocks: 1000, clusters: 5, footprintWindow: 5 * time.Second}
}

func newRootCommand() *cobra.Command {
	var s settings
	root := &cobra.Command{
		Use:           "seqbench",
		Short:         "Benchmarks of the sequencer node (failover, switchover, commit path, encoding) and of the operator",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.BoolVar(&s.quick, "quick", false, "a small run (the default): 4 kills per profile, short windows, small operator sizes, under five minutes")
	pf.BoolVar(&s.full, "full", false, "the full run: 30 kills per profile, 20 hand-overs of each kind, longer windows")
	pf.StringVar(&s.out, "out", "", "write the markdown report here (plots go to <dir of out>/benchmarks/)")
	pf.StringVar(&s.json, "json", "", "write the raw results here as JSON")
	pf.StringVar(&s.nodeBin, "node-bin", "", "the node binary (default: `node` next to seqbench, else built with go build)")
	pf.StringVar(&s.workDir, "work-dir", "", "directory for the clusters' data (default: a new temp dir, removed afterwards)")
	pf.BoolVar(&s.keep, "keep", false, "keep the work dir (logs of every node) after the run")
	pf.IntVar(&s.kills, "kills", 0, "override the number of kills (and hand-overs) per series")
	pf.StringSliceVar(&s.profiles, "profiles", []string{"default", "ev-node", "hashicorp"}, "Raft timing profiles of the failover benchmark")
	pf.DurationVar(&s.timeout, "timeout", 90*time.Minute, "stop the whole run after this long")
	pf.Uint64Var(&s.historyBlocks, "history-blocks", 0, "override the blocks of history a new member joins (operator benchmark; full run: 100000)")
	pf.IntVar(&s.clusters, "clusters", 0, "override the number of SequencerClusters of the footprint benchmark (full run: 100)")
	pf.StringVar(&s.cpuprofile, "cpuprofile", "", "write a CPU profile of seqbench itself; commitpath's node processes then write <work dir>/<series>/node-N/cpu.pprof (keep them with --keep)")

	run := func(parts ...string) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			return runParts(cmd.Context(), s, strings.Join(os.Args, " "), parts)
		}
	}
	all := &cobra.Command{Use: "all", Short: "Run every benchmark, print the table, write the report", Args: cobra.NoArgs, RunE: run("failover", "switchover", "commitpath", "encoding", "operator")}
	root.AddCommand(all,
		&cobra.Command{Use: "failover", Short: "SIGKILL of the leader under load, per timing profile, against the bare-Raft floor", Args: cobra.NoArgs, RunE: run("failover")},
		&cobra.Command{Use: "switchover", Short: "Planned hand-overs (SIGTERM, API transfer): largest gap between blocks", Args: cobra.NoArgs, RunE: run("switchover")},
		&cobra.Command{Use: "commitpath", Short: "Commit latency per block, sustained throughput with fsync, the disk's fsync rate", Args: cobra.NoArgs, RunE: run("commitpath")},
		&cobra.Command{Use: "operator", Short: "The operator on the local control plane (root): status freshness, create, scale, a joining member, footprint of many clusters", Args: cobra.NoArgs, RunE: run("operator")},
		&cobra.Command{Use: "encoding", Short: "Protobuf against JSON for the same block (go test -bench in pkg/chain)", Args: cobra.NoArgs, RunE: run("encoding")},
		newFloorNodeCommand(),
		newCommitPathNodeCommand(),
		newReportCommand(),
	)
	return root
}

func runParts(parent context.Context, s settings, command string, parts []string) error {
	if s.quick && s.full {
		return errors.New("--quick and --full exclude each other")
	}
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if s.cpuprofile != "" {
		f, err := os.Create(s.cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	p := s.plan()
	if s.kills > 0 {
		p.kills, p.switches, p.operatorKills = s.kills, s.kills, s.kills
	}
	if s.historyBlocks > 0 {
		p.historyBlocks = s.historyBlocks
	}
	if s.clusters > 0 {
		p.clusters = s.clusters
	}
	mode := "quick"
	if s.full {
		mode = "full"
	}
	work := s.workDir
	if work == "" {
		dir, err := os.MkdirTemp("", "seqbench-")
		if err != nil {
			return err
		}
		work = dir
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if !s.keep && s.workDir == "" {
		defer os.RemoveAll(work)
	} else {
		fmt.Fprintf(os.Stderr, "work dir (logs): %s\n", work)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	res := &report.Results{Mode: mode, Command: command, Started: time.Now().UTC(), Machine: report.DescribeMachine(work)}
	progress := os.Stderr
	begin := time.Now()
	step := func(name string) { fmt.Fprintf(progress, "[%6.1fs] %s\n", time.Since(begin).Seconds(), name) }
	has := func(name string) bool {
		for _, x := range parts {
			if x == name {
				return true
			}
		}
		return false
	}
	var errs []error
	checkpoint := func() {
		if s.json != "" {
			res.Seconds = time.Since(begin).Seconds()
			_ = report.WriteJSON(res, s.json)
		}
	}
	needNode := has("failover") || has("switchover")
	nodeBin := s.nodeBin
	if needNode && nodeBin == "" {
		if nodeBin, err = findNode(self, work); err != nil {
			return err
		}
	}
	if has("failover") {
		for _, name := range s.profiles {
			prof, ok := stats.ProfileByName(name)
			if !ok {
				return fmt.Errorf("unknown profile %q (default, ev-node, hashicorp)", name)
			}
			step(fmt.Sprintf("failover, node, %s timings %s: %d kills under load", prof.Name, prof.Label(), p.kills))
			r, err := failover.RunKills(ctx, failover.Options{Bin: nodeBin, Dir: filepath.Join(work, "failover-"+prof.Name), Timings: prof,
				BlockTime: 100 * time.Millisecond, Trials: p.kills, LoadPerSecond: p.load, Quiet: p.quiet, Progress: progress})
			res.Failover = append(res.Failover, r)
			if err != nil {
				errs = append(errs, fmt.Errorf("failover %s: %w", prof.Name, err))
			}
			step(fmt.Sprintf("failover, bare-raft floor, %s timings: %d kills", prof.Name, p.kills))
			f, err := floor.Run(ctx, floor.Options{Bin: self, Dir: filepath.Join(work, "floor-"+prof.Name), Timings: prof,
				BlockTime: 100 * time.Millisecond, Kills: p.kills, Quiet: p.quiet, Progress: progress})
			res.Floor = append(res.Floor, f)
			if err != nil {
				errs = append(errs, fmt.Errorf("floor %s: %w", prof.Name, err))
			}
			if ctx.Err() != nil {
				break
			}
		}
	}
	checkpoint()
	if has("switchover") && ctx.Err() == nil {
		step(fmt.Sprintf("switchover: %d SIGTERMs and %d API transfers of the leader, default timings", p.switches, p.switches))
		r, err := failover.RunSwitchovers(ctx, failover.Options{Bin: nodeBin, Dir: filepath.Join(work, "switchover"), Timings: stats.DefaultProfile,
			BlockTime: 100 * time.Millisecond, Trials: p.switches, LoadPerSecond: p.load, Quiet: p.quiet, Progress: progress})
		res.Switchover = &r
		if err != nil {
			errs = append(errs, fmt.Errorf("switchover: %w", err))
		}
	}
	checkpoint()
	if has("commitpath") && ctx.Err() == nil {
		step("commit path: the disk's fsync rate")
		fs, err := commitpath.MeasureFsync(ctx, work, 2*time.Second)
		res.Fsync = &fs
		if err != nil {
			errs = append(errs, fmt.Errorf("fsync: %w", err))
		}
		for _, bt := range []time.Duration{100 * time.Millisecond, 10 * time.Millisecond} {
			for _, n := range []int{1, 100, 1000} {
				if ctx.Err() != nil {
					break
				}
				step(fmt.Sprintf("commit latency: %v blocks of %d tx, %v", bt, n, p.latencyWindow))
				r, err := commitpath.MeasureLatency(ctx, commitpath.LatencyOptions{Dir: filepath.Join(work, fmt.Sprintf("latency-%v-%d", bt, n)),
					BlockTime: bt, TxsPerBlock: n, Window: p.latencyWindow, Bin: self, Profile: s.cpuprofile != ""})
				res.CommitLatency = append(res.CommitLatency, r)
				if err != nil {
					errs = append(errs, fmt.Errorf("commit latency %v/%d: %w", bt, n, err))
				}
			}
		}
		for _, size := range p.blockSizes {
			if ctx.Err() != nil {
				break
			}
			step(fmt.Sprintf("throughput: blocks of up to %d tx at 100ms, %v", size, p.throughputWindow))
			r, err := commitpath.MeasureThroughput(ctx, commitpath.ThroughputOptions{Dir: filepath.Join(work, fmt.Sprintf("throughput-%d", size)),
				BlockTime: 100 * time.Millisecond, MaxTxsPerBlock: size, Window: p.throughputWindow, Bin: self, Profile: s.cpuprofile != ""})
			res.Throughput = append(res.Throughput, r)
			if err != nil {
				errs = append(errs, fmt.Errorf("throughput %d: %w", size, err))
			}
		}
	}
	checkpoint()
	if has("encoding") && ctx.Err() == nil {
		step("encoding: go test -bench in pkg/chain")
		r, err := encoding.Run(ctx, p.encodingBenchtime)
		res.Encoding = &r
		if err != nil {
			errs = append(errs, fmt.Errorf("encoding: %w", err))
		}
	}
	checkpoint()
	if has("operator") && ctx.Err() == nil {
		res.Operator = &report.OperatorResults{}
		step(fmt.Sprintf("operator, real node pods on the local control plane: %d leader kills, create, scale 3 → 5 → 3, a member joining %d blocks of history", p.operatorKills, p.historyBlocks))
		live, err := operatorlive.Run(ctx, operatorlive.Options{Failovers: p.operatorKills, HistoryBlocks: p.historyBlocks, BinDir: filepath.Dir(self), Progress: progress})
		if err == nil || live.TotalSeconds > 0 {
			res.Operator.Live = &live
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("operator (live): %w", err))
		}
		checkpoint()
		if ctx.Err() == nil {
			step(fmt.Sprintf("operator footprint: %d SequencerClusters of fake node APIs, %v steady window", p.clusters, p.footprintWindow))
			fp, err := operatorfootprint.Run(ctx, operatorfootprint.Options{Clusters: p.clusters, Window: p.footprintWindow, Progress: progress,
				ManagerBin: filepath.Join(filepath.Dir(self), "manager"), LocalclusterBin: filepath.Join(filepath.Dir(self), "localcluster")})
			if err == nil {
				res.Operator.Footprint = &fp
			} else {
				errs = append(errs, fmt.Errorf("operator footprint: %w", err))
			}
		}
	}
	res.Seconds = time.Since(begin).Seconds()
	res.Machine.LoadEnd = report.LoadAvg()
	if n := commitpath.StuckShutdowns.Load(); n > 0 {
		// A finding about the node, not a failure of the benchmark: reported, not fatal.
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d commit-path node process(es) did not exit within 15 s of SIGTERM (a hung raft.Shutdown; see the findings on hashicorp/raft pipeline replication) and were killed", n))
		fmt.Fprintln(progress, "seqbench: WARNING:", res.Warnings[len(res.Warnings)-1])
	}
	for _, e := range errs {
		res.Errors = append(res.Errors, e.Error())
	}
	fmt.Println()
	fmt.Print(report.Table(res).Text())
	if s.json != "" {
		if err := report.WriteJSON(res, s.json); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprintf(progress, "raw results: %s\n", s.json)
		}
	}
	if s.out != "" {
		if err := report.WriteMarkdown(res, s.out); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprintf(progress, "report: %s\n", s.out)
		}
	}
	return errors.Join(errs...)
}

// findNode uses `node` next to seqbench, or builds ./cmd/node into the work dir.
func findNode(self, work string) (string, error) {
	next := filepath.Join(filepath.Dir(self), "node")
	if st, err := os.Stat(next); err == nil && !st.IsDir() {
		return next, nil
	}
	bin := filepath.Join(work, "node")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/node").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("no node binary next to seqbench, and go build ./cmd/node failed (run from the module root or pass --node-bin): %v\n%s", err, out)
	}
	return bin, nil
}
