package commitpath

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/internal/bench/loopback"
	"github.com/seqops/sequencer-operator/pkg/failover"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
	sraft "github.com/seqops/sequencer-operator/pkg/raft"
	"github.com/seqops/sequencer-operator/pkg/sequencer"
)

// One node per process: three nodes in one process share one Go scheduler and one garbage
// collector, and on two cores a burst of work in any of them (or in the load generator) delays the
// goroutines of all three at once — goroutine wake-ups late by 20–35 ms were seen inside the
// benchmark process while a separate process saw none, enough for the leader to miss its 50 ms
// lease and for commit latencies to gain the delay. Real deployments run one node per process
// (per pod), so the benchmark does too.
//
// The load generator runs inside each node process and calls SubmitTx directly, only while that
// node produces: a per-transaction HTTP request would cost more CPU than the commit path itself
// on two cores, and the API is not what this benchmark measures.

// NodeOptions configure one node process of the commit-path benchmark.
type NodeOptions struct {
	Index       int
	Dir         string
	RaftAddr    string
	HTTPAddr    string
	Join        string
	KeySeed     string // hex ed25519 seed shared by the three processes (the chain's one proposer)
	BlockTime   time.Duration
	MaxTxs      int
	Outstanding int64
	Feeders     int
	// CPUProfile, if set, is where the process writes its CPU profile.
	CPUProfile string
}

// recordsFile is where a node process writes the blocks it saw committed, when it stops.
const recordsFile = "blocks.json"

type blockRecord struct {
	Height  uint64 `json:"h"`
	Built   int64  `json:"b"` // header time, Unix ns
	Visible int64  `json:"v"` // when this node showed the block committed, Unix ns
	Txs     int    `json:"n"`
}

// RunNode runs one node with its load generator until ctx ends, then writes the blocks it saw to
// Dir/blocks.json.
func RunNode(ctx context.Context, o NodeOptions) error {
	seed, err := hex.DecodeString(o.KeySeed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return fmt.Errorf("--key-seed must be %d hex bytes", ed25519.SeedSize)
	}
	cfg := sequencer.Config{
		ID: fmt.Sprintf("node-%d", o.Index), ChainID: "bench", DataDir: o.Dir,
		RaftBind: o.RaftAddr, RaftAdvertise: o.RaftAddr, HTTPAddr: o.HTTPAddr,
		Bootstrap: o.Join == "", Join: o.Join, APIToken: "bench", SigningKey: ed25519.NewKeyFromSeed(seed),
		Producer:  failover.Config{BlockTime: o.BlockTime, MaxTxsPerBlock: o.MaxTxs},
		Autopilot: sraft.AutopilotConfig{StabilizationTime: 300 * time.Millisecond},
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return fmt.Errorf("cannot create CPU profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return fmt.Errorf("cannot start CPU profile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	n, err := sequencer.New(cfg, nil)
	if err != nil {
		return fmt.Errorf("cannot create node: %w", err)
	}
	if err := n.Start(ctx, true); err != nil {
		return fmt.Errorf("cannot start node: %w", err)
	}
	t := newTracker(&cluster{nodes: []*sequencer.Node{n}})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); t.follow(ctx, n) }()
	for i := 0; i < o.Feeders; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); t.feed(ctx, o.Index*o.Feeders+i, o.Outstanding) }(i)
	}
	<-ctx.Done()
	wg.Wait()
	// The records are written before the node stops: a hashicorp/raft Shutdown can hang (see
	// the findings), and the parent kills a process that does not exit.
	defer n.Kill()
	t.mu.Lock()
	recs := make([]blockRecord, 0, len(t.blocks))
	for _, b := range t.blocks {
		recs = append(recs, blockRecord{Height: b.height, Built: b.built.UnixNano(), Visible: b.visible.UnixNano(), Txs: b.txs})
	}
	t.mu.Unlock()
	data, err := json.Marshal(recs)
	if err != nil {
		return fmt.Errorf("cannot encode block records: %w", err)
	}
	return os.WriteFile(filepath.Join(o.Dir, recordsFile), data, 0o600)
}

// procCluster is three node processes started from bin.
type procCluster struct {
	dirs    []string
	cmds    []*exec.Cmd
	exited  []chan struct{}
	clients []*nodeapi.Client
	http    *http.Client
}

func startProcCluster(ctx context.Context, bin, dir string, prod failover.Config, outstanding int64, feeders int, profile bool) (*procCluster, error) {
	nw, err := loopback.Pick(3, 2)
	if err != nil {
		return nil, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("cannot make the proposer key: %w", err)
	}
	c := &procCluster{http: &http.Client{Timeout: 5 * time.Second}}
	for i := 0; i < 3; i++ {
		d := filepath.Join(dir, fmt.Sprintf("node-%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			c.stop()
			return nil, fmt.Errorf("cannot create node directory: %w", err)
		}
		args := []string{"commitpath-node", "--index", strconv.Itoa(i), "--dir", d,
			"--raft", nw.Addr(i, 0), "--http", nw.Addr(i, 1), "--key-seed", hex.EncodeToString(seed),
			"--block-time", prod.BlockTime.String(), "--max-txs", strconv.Itoa(prod.MaxTxsPerBlock),
			"--outstanding", strconv.FormatInt(outstanding, 10), "--feeders", strconv.Itoa(feeders)}
		if i > 0 {
			args = append(args, "--join", "http://"+nw.Addr(0, 1))
		}
		if profile {
			args = append(args, "--cpuprofile", filepath.Join(d, "cpu.pprof"))
		}
		logf, err := os.Create(filepath.Join(d, "node.log"))
		if err != nil {
			c.stop()
			return nil, fmt.Errorf("cannot create node log: %w", err)
		}
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		// Its own process group (a terminal's ^C reaches only seqbench, which stops the nodes in
		// order), and killed if seqbench dies.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			_ = logf.Close()
			c.stop()
			return nil, fmt.Errorf("cannot start node process %d: %w", i, err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); _ = logf.Close(); close(done) }()
		c.dirs, c.cmds, c.exited = append(c.dirs, d), append(c.cmds, cmd), append(c.exited, done)
		c.clients = append(c.clients, nodeapi.NewClient("http://"+nw.Addr(i, 1), nodeapi.WithToken("bench")))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c.formed(ctx) {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.stop()
			return nil, fmt.Errorf("node processes did not form three voters within 60s (logs in %s)", dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// formed reports whether three voters exist and one node produced, in one term, for a whole second.
func (c *procCluster) formed(ctx context.Context) bool {
	cfg, err := c.clients[0].Members(ctx)
	if err != nil {
		return false
	}
	voters := 0
	for _, s := range cfg.Servers {
		if s.Suffrage == nodeapi.SuffrageVoter {
			voters++
		}
	}
	if voters != 3 {
		return false
	}
	leader, term := c.producer(ctx)
	if leader < 0 || !sleep(ctx, time.Second) {
		return false
	}
	again, term2 := c.producer(ctx)
	return again == leader && term2 == term
}

func (c *procCluster) producer(ctx context.Context) (int, uint64) {
	for i, cl := range c.clients {
		if st, err := cl.Status(ctx); err == nil && st.Producing {
			return i, st.Term
		}
	}
	return -1, 0
}

func (c *procCluster) maxTerm(ctx context.Context) uint64 {
	var m uint64
	for _, cl := range c.clients {
		if st, err := cl.Status(ctx); err == nil {
			m = max(m, st.Term)
		}
	}
	return m
}

func (c *procCluster) scrapeAll(ctx context.Context) ([]Bucket, error) {
	var sum []Bucket
	for _, cl := range c.clients {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.BaseURL()+"/metrics", nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("cannot scrape %s: %w", cl.BaseURL(), err)
		}
		b, err := parseHist(resp.StatusCode, resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cl.BaseURL(), err)
		}
		sum = addBuckets(sum, b)
	}
	return sum, nil
}

// stop asks every process to stop (SIGTERM: it writes its records and exits), and kills any that
// has not exited within 15 s.
func (c *procCluster) stop() {
	for _, cmd := range c.cmds {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	for i, done := range c.exited {
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			StuckShutdowns.Add(1)
			fmt.Fprintf(os.Stderr, "seqbench: WARNING: commit-path node process %d did not exit within 15s; killed\n", i)
			_ = c.cmds[i].Process.Kill()
			<-done
		}
	}
}

// blocks merges what the stopped processes recorded: each block once, first seen wherever.
func (c *procCluster) blocks() ([]blockSeen, error) {
	first := map[uint64]blockSeen{}
	var errs []error
	for _, d := range c.dirs {
		data, err := os.ReadFile(filepath.Join(d, recordsFile))
		if err != nil {
			errs = append(errs, fmt.Errorf("cannot read block records: %w", err))
			continue
		}
		var recs []blockRecord
		if err := json.Unmarshal(data, &recs); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d, err))
			continue
		}
		for _, r := range recs {
			b := blockSeen{height: r.Height, built: time.Unix(0, r.Built), visible: time.Unix(0, r.Visible), txs: r.Txs}
			if old, ok := first[r.Height]; !ok || b.visible.Before(old.visible) {
				first[r.Height] = b
			}
		}
	}
	if len(first) == 0 {
		return nil, fmt.Errorf("no node process recorded blocks: %w", errors.Join(errs...))
	}
	out := make([]blockSeen, 0, len(first))
	for _, b := range first {
		out = append(out, b)
	}
	return out, nil
}

// cpuSeconds is the user and system CPU time the node processes have used so far, from
// /proc/<pid>/stat (Linux; clock ticks of 1/100 s, the kernel's USER_HZ on every Linux
// architecture Go supports); ok is false where that cannot be read.
func (c *procCluster) cpuSeconds() (total float64, ok bool) {
	for _, cmd := range c.cmds {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if err != nil {
			return 0, false
		}
		// Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
		i := strings.LastIndexByte(string(data), ')')
		if i < 0 {
			return 0, false
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 13 {
			return 0, false
		}
		ut, err1 := strconv.ParseFloat(f[11], 64)
		st, err2 := strconv.ParseFloat(f[12], 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		total += (ut + st) / 100
	}
	return total, true
}

// runProcs is run with one node per process.
func runProcs(ctx context.Context, bin, dir string, prod failover.Config, outstanding int64, feeders int, window time.Duration, profile bool) (w measured, err error) {
	c, err := startProcCluster(ctx, bin, dir, prod, outstanding, feeders, profile)
	if err != nil {
		return w, err
	}
	stopped := false
	defer func() {
		if !stopped {
			c.stop()
		}
	}()
	if !sleep(ctx, time.Second) {
		return w, ctx.Err()
	}
	termBefore := c.maxTerm(ctx)
	if w.before, err = c.scrapeAll(ctx); err != nil {
		return w, err
	}
	cpuBefore, cpuOK := c.cpuSeconds()
	from := time.Now()
	if !sleep(ctx, window) {
		return w, ctx.Err()
	}
	to := time.Now()
	cpuAfter, cpuOK2 := c.cpuSeconds()
	if cpuOK && cpuOK2 {
		w.cpuSeconds = cpuAfter - cpuBefore
	}
	if w.after, err = c.scrapeAll(ctx); err != nil {
		return w, err
	}
	w.elections = int(c.maxTerm(ctx) - termBefore)
	c.stop()
	stopped = true
	all, err := c.blocks()
	if err != nil {
		return w, err
	}
	w.blocks = inWindow(all, from, to)
	return w, nil
}

// parseHist reads the commit-latency histogram out of a /metrics answer.
func parseHist(code int, body io.Reader) ([]Bucket, error) {
	if code != http.StatusOK {
		return nil, fmt.Errorf("/metrics answered %d", code)
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	return histFromLines(sc)
}
