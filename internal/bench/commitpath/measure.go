package commitpath

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/internal/bench/stats"
	"github.com/seqops/sequencer-operator/pkg/failover"
	"github.com/seqops/sequencer-operator/pkg/sequencer"
)

// LatencyOptions configure one commit-latency series.
type LatencyOptions struct {
	Dir         string
	BlockTime   time.Duration
	TxsPerBlock int
	Window      time.Duration
	// Bin is the seqbench binary that runs each node in its own process (its commitpath-node
	// command); empty runs the three nodes inside this process.
	Bin string
	// Profile makes each node process write Dir/node-N/cpu.pprof.
	Profile bool
}

// LatencyResult is one series: every block in the window, at a fixed block size.
type LatencyResult struct {
	BlockTime   time.Duration `json:"blockTime"`
	TxsPerBlock int           `json:"txsPerBlock"`
	Blocks      int           `json:"blocks"`
	// MeanTxs is the mean number of transactions per block (the target is TxsPerBlock, every block full).
	MeanTxs float64 `json:"meanTxs"`
	// MeanIntervalMs is the mean time between consecutive blocks' header times.
	MeanIntervalMs float64 `json:"meanIntervalMs"`
	// Proposal is the node's own measure of proposal → commit: the time raft.Apply of a block takes
	// on the leader (replication to a quorum with fsync, and the leader's apply), from the delta of
	// its sequencer_block_commit_latency_seconds histogram over the window; percentiles interpolated
	// within buckets.
	Proposal HistSummary `json:"proposal"`
	// BuildToVisible are per-block samples: header time (the leader starts building) → the leader's
	// status shows the block committed. Includes execution, signing and encoding of the block.
	BuildToVisible   stats.Summary `json:"buildToVisible"`
	BuildToVisibleMs []float64     `json:"buildToVisibleMs"`
	// Elections is how many Raft terms passed during the window (0: one leader throughout).
	Elections int `json:"elections"`
}

// HistSummary is a Prometheus histogram delta.
type HistSummary struct {
	Count int64 `json:"count"`
	// Buckets maps the upper bound in seconds (as printed) to the cumulative count.
	Buckets []Bucket `json:"buckets"`
	P50Ms   float64  `json:"p50Ms"`
	P99Ms   float64  `json:"p99Ms"`
	// P99BoundMs is the upper bound of the bucket holding p99: p99 is at most this.
	P99BoundMs float64 `json:"p99BoundMs"`
	// Within10ms is the fraction of proposals committed within 10 ms.
	Within10ms float64 `json:"within10ms"`
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	LeSeconds float64 `json:"le"`
	Count     int64   `json:"count"`
}

// MeasureLatency runs a cluster with blocks of exactly TxsPerBlock transactions (the mempool is kept
// ahead of the producer) and measures every block committed in the window.
func MeasureLatency(ctx context.Context, o LatencyOptions) (LatencyResult, error) {
	res := LatencyResult{BlockTime: o.BlockTime, TxsPerBlock: o.TxsPerBlock}
	m, err := measure(ctx, o.Bin, o.Profile, o.Dir, failover.Config{BlockTime: o.BlockTime, MaxTxsPerBlock: o.TxsPerBlock}, int64(3*o.TxsPerBlock), o.Window)
	if err != nil {
		return res, err
	}
	blocks, before, after := m.blocks, m.before, m.after
	res.Elections = m.elections
	fill(&res.Blocks, &res.MeanTxs, &res.MeanIntervalMs, blocks)
	for _, b := range blocks {
		res.BuildToVisibleMs = append(res.BuildToVisibleMs, stats.Ms(b.visible.Sub(b.built)))
	}
	res.BuildToVisible = stats.Summarize(res.BuildToVisibleMs)
	res.Proposal = histDelta(before, after)
	return res, nil
}

// ThroughputOptions configure one throughput point.
type ThroughputOptions struct {
	Dir            string
	BlockTime      time.Duration
	MaxTxsPerBlock int
	Window         time.Duration
	// Bin and Profile: as in LatencyOptions.
	Bin     string
	Profile bool
}

// ThroughputResult is the committed rate with the mempool kept full.
type ThroughputResult struct {
	BlockTime      time.Duration `json:"blockTime"`
	MaxTxsPerBlock int           `json:"maxTxsPerBlock"`
	Blocks         int           `json:"blocks"`
	MeanTxs        float64       `json:"meanTxs"`
	MeanIntervalMs float64       `json:"meanIntervalMs"`
	// TxPerSecond is transactions in blocks committed in the window ÷ the window.
	TxPerSecond float64       `json:"txPerSecond"`
	Proposal    HistSummary   `json:"proposal"`
	BuildToVis  stats.Summary `json:"buildToVisible"`
	// Elections is how many Raft terms passed during the window (0: one leader throughout).
	Elections int `json:"elections"`
	// NodeCPUCores is the CPU the three node processes (nodes and load generators) used during the
	// window ÷ the window: how many cores the cluster kept busy. 0 when not measured.
	NodeCPUCores float64 `json:"nodeCpuCores,omitempty"`
	// NodeCPUMsPer1000Tx is that CPU per 1,000 committed transactions: on a machine with C cores the
	// cluster cannot commit more than C × 1e6 ÷ this many transactions per second.
	NodeCPUMsPer1000Tx float64 `json:"nodeCpuMsPer1000Tx,omitempty"`
}

// MeasureThroughput keeps the leader's mempool ahead of the producer (two blocks' worth outstanding)
// and counts committed transactions over the window.
func MeasureThroughput(ctx context.Context, o ThroughputOptions) (ThroughputResult, error) {
	res := ThroughputResult{BlockTime: o.BlockTime, MaxTxsPerBlock: o.MaxTxsPerBlock}
	m, err := measure(ctx, o.Bin, o.Profile, o.Dir, failover.Config{BlockTime: o.BlockTime, MaxTxsPerBlock: o.MaxTxsPerBlock}, int64(3*o.MaxTxsPerBlock), o.Window)
	if err != nil {
		return res, err
	}
	blocks, before, after := m.blocks, m.before, m.after
	res.Elections = m.elections
	fill(&res.Blocks, &res.MeanTxs, &res.MeanIntervalMs, blocks)
	total := 0
	var lat []float64
	for _, b := range blocks {
		total += b.txs
		lat = append(lat, stats.Ms(b.visible.Sub(b.built)))
	}
	res.TxPerSecond = float64(total) / o.Window.Seconds()
	if m.cpuSeconds > 0 && total > 0 {
		res.NodeCPUCores = m.cpuSeconds / o.Window.Seconds()
		res.NodeCPUMsPer1000Tx = m.cpuSeconds * 1000 / (float64(total) / 1000)
	}
	res.BuildToVis = stats.Summarize(lat)
	res.Proposal = histDelta(before, after)
	return res, nil
}

func fill(blocks *int, meanTxs, meanInterval *float64, bs []blockSeen) {
	*blocks = len(bs)
	if len(bs) == 0 {
		return
	}
	total := 0
	for _, b := range bs {
		total += b.txs
	}
	*meanTxs = float64(total) / float64(len(bs))
	if len(bs) > 1 {
		*meanInterval = stats.Ms(bs[len(bs)-1].built.Sub(bs[0].built)) / float64(len(bs)-1)
	}
}

// measure runs one series with two load-generating goroutines, in node processes when bin is set.
func measure(ctx context.Context, bin string, profile bool, dir string, prod failover.Config, outstanding int64, window time.Duration) (measured, error) {
	if bin != "" {
		return runProcs(ctx, bin, dir, prod, outstanding, 2, window, profile)
	}
	return run(ctx, dir, prod, outstanding, 2, window)
}

// run starts a cluster, feeds it for a warm-up second, then measures for window. The histogram is
// the sum over all nodes (each counts its own proposals while it leads); elections counts the terms
// the cluster went through during the window.
func run(ctx context.Context, dir string, prod failover.Config, outstanding int64, feeders int, window time.Duration) (w measured, err error) {
	c, err := startCluster(ctx, dir, prod)
	if err != nil {
		return w, err
	}
	defer c.stop()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := newTracker(c)
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func(n *sequencer.Node) { defer wg.Done(); t.follow(rctx, n) }(n)
	}
	for i := 0; i < feeders; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); t.feed(rctx, i, outstanding) }(i)
	}
	defer func() { cancel(); wg.Wait() }()
	if !sleep(ctx, time.Second) {
		return w, ctx.Err()
	}
	termBefore := c.maxTerm()
	if w.before, err = scrapeAll(c); err != nil {
		return w, err
	}
	from := time.Now()
	if !sleep(ctx, window) {
		return w, ctx.Err()
	}
	to := time.Now()
	if w.after, err = scrapeAll(c); err != nil {
		return w, err
	}
	w.elections = int(c.maxTerm() - termBefore)
	w.blocks = t.window(from, to)
	return w, nil
}

type measured struct {
	blocks        []blockSeen
	before, after []Bucket
	elections     int
	cpuSeconds    float64 // CPU the node processes used in the window; 0 when unknown or in-process
}

func (c *cluster) maxTerm() uint64 {
	var m uint64
	for _, n := range c.nodes {
		m = max(m, n.Status().Term)
	}
	return m
}

func scrapeAll(c *cluster) ([]Bucket, error) {
	var sum []Bucket
	for _, n := range c.nodes {
		b, err := scrape(n)
		if err != nil {
			return nil, err
		}
		sum = addBuckets(sum, b)
	}
	return sum, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

const histName = "sequencer_block_commit_latency_seconds_bucket"

// scrape reads a node's commit-latency histogram from its /metrics handler.
func scrape(n *sequencer.Node) ([]Bucket, error) {
	rec := httptest.NewRecorder()
	n.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return parseHist(rec.Code, rec.Body)
}

func histFromLines(sc *bufio.Scanner) ([]Bucket, error) {
	var out []Bucket
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, histName+"{") {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.Index(line, `"}`)
		if i < 0 || j < i {
			continue
		}
		le := line[i+4 : j]
		bound := math.Inf(1)
		if le != "+Inf" {
			v, err := strconv.ParseFloat(le, 64)
			if err != nil {
				continue
			}
			bound = v
		}
		fields := strings.Fields(line[j+2:])
		if len(fields) == 0 {
			continue
		}
		cnt, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out = append(out, Bucket{LeSeconds: bound, Count: int64(cnt)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read /metrics: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("no commit-latency histogram in /metrics")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LeSeconds < out[j].LeSeconds })
	return out, nil
}

// addBuckets adds b to sum bucket by bucket (every node has the same buckets).
func addBuckets(sum, b []Bucket) []Bucket {
	if sum == nil {
		return b
	}
	for i := range sum {
		if i < len(b) {
			sum[i].Count += b[i].Count
		}
	}
	return sum
}

func histDelta(before, after []Bucket) HistSummary {
	var h HistSummary
	prev := map[float64]int64{}
	for _, b := range before {
		prev[b.LeSeconds] = b.Count
	}
	for _, b := range after {
		h.Buckets = append(h.Buckets, Bucket{LeSeconds: b.LeSeconds, Count: b.Count - prev[b.LeSeconds]})
	}
	if len(h.Buckets) == 0 {
		return h
	}
	h.Count = h.Buckets[len(h.Buckets)-1].Count
	if h.Count == 0 {
		return h
	}
	for _, b := range h.Buckets {
		if b.LeSeconds >= 0.01-1e-12 && b.LeSeconds <= 0.01+1e-12 {
			h.Within10ms = float64(b.Count) / float64(h.Count)
		}
	}
	h.P50Ms = quantile(h.Buckets, 0.50) * 1000
	h.P99Ms = quantile(h.Buckets, 0.99) * 1000
	rank := 0.99 * float64(h.Count)
	for _, b := range h.Buckets {
		if float64(b.Count) >= rank {
			h.P99BoundMs = b.LeSeconds * 1000
			break
		}
	}
	// JSON cannot carry +Inf: the last bucket is written with le = -1.
	for i := range h.Buckets {
		if math.IsInf(h.Buckets[i].LeSeconds, 1) {
			h.Buckets[i].LeSeconds = -1
		}
	}
	if math.IsInf(h.P99BoundMs, 1) {
		h.P99BoundMs = -1
	}
	return h
}

// quantile interpolates linearly within the bucket that holds q, as Prometheus's histogram_quantile does.
func quantile(b []Bucket, q float64) float64 {
	total := float64(b[len(b)-1].Count)
	rank := q * total
	lower, prevCount := 0.0, 0.0
	for _, x := range b {
		if float64(x.Count) >= rank {
			if math.IsInf(x.LeSeconds, 1) {
				return lower
			}
			if float64(x.Count) == prevCount {
				return x.LeSeconds
			}
			return lower + (x.LeSeconds-lower)*(rank-prevCount)/(float64(x.Count)-prevCount)
		}
		lower, prevCount = x.LeSeconds, float64(x.Count)
	}
	return lower
}

// FsyncResult is the disk's own rate of small synced writes, where the clusters keep their data.
type FsyncResult struct {
	Dir     string        `json:"dir"`
	Ops     int           `json:"ops"`
	PerSec  float64       `json:"perSecond"`
	Latency stats.Summary `json:"latency"`
}

// MeasureFsync rewrites 4 KiB at the end of a file and fdatasyncs it (what bbolt does per commit) for d.
func MeasureFsync(ctx context.Context, dir string, d time.Duration) (FsyncResult, error) {
	res := FsyncResult{Dir: dir}
	f, err := os.CreateTemp(dir, "fsync-*")
	if err != nil {
		return res, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var lat []float64
	start := time.Now()
	var off int64
	for time.Since(start) < d && ctx.Err() == nil && len(lat) < 1_000_000 {
		t := time.Now()
		if _, err := f.WriteAt(buf, off); err != nil {
			return res, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return res, err
		}
		lat = append(lat, stats.Ms(time.Since(t)))
		off = (off + 4096) % (4 << 20)
	}
	res.Ops = len(lat)
	res.PerSec = float64(len(lat)) / time.Since(start).Seconds()
	res.Latency = stats.Summarize(lat)
	res.Dir, _ = filepath.Abs(dir)
	return res, nil
}
