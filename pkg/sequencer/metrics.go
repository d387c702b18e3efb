package sequencer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the node's Prometheus metrics, in a registry of their own so several nodes can live in
// one test process.
type metrics struct {
	registry        *prometheus.Registry
	blocksCommitted prometheus.Counter
	txsCommitted    prometheus.Counter
	txsSubmitted    prometheus.Counter
	commitLatency   prometheus.Histogram
	proposalErrors  prometheus.Counter
	takeover        prometheus.Histogram
	transfers       *prometheus.CounterVec
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		blocksCommitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sequencer_blocks_committed_total", Help: "Blocks applied from the committed Raft log on this node.",
		}),
		txsCommitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sequencer_txs_committed_total", Help: "Transactions in blocks applied on this node.",
		}),
		txsSubmitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sequencer_txs_submitted_total", Help: "Transactions accepted into this node's mempool.",
		}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sequencer_block_commit_latency_seconds", Help: "Time from proposing a block to its commit and local apply, on the leader.",
			Buckets: []float64{.0005, .001, .002, .004, .006, .008, .01, .015, .02, .05, .1, .25, .5, 1, 2.5},
		}),
		proposalErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sequencer_block_proposal_failures_total", Help: "Block proposals that did not commit.",
		}),
		takeover: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sequencer_leader_takeover_seconds", Help: "Time from winning leadership to producing (barrier on the committed head).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
		}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sequencer_leadership_transfers_total", Help: "Leadership hand-overs started by this node, by reason and result.",
		}, []string{"reason", "result"}),
	}
	m.registry.MustRegister(m.blocksCommitted, m.txsCommitted, m.txsSubmitted, m.commitLatency, m.proposalErrors, m.takeover, m.transfers,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sequencer_leader_changes_total", Help: "Leader changes this node has observed.",
		}, func() float64 { return float64(n.raft.LeaderChanges()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sequencer_is_leader", Help: "1 while this node is the Raft leader.",
		}, func() float64 { return boolFloat(n.raft.IsLeader()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sequencer_producing", Help: "1 while this node's block producer runs.",
		}, func() float64 { return boolFloat(n.manager.Producing()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sequencer_apply_lag_entries", Help: "Committed Raft entries not yet applied to the chain.",
		}, func() float64 {
			p := n.raft.Progress()
			if p.CommitIndex < p.AppliedIndex {
				return 0
			}
			return float64(p.CommitIndex - p.AppliedIndex)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sequencer_chain_height", Help: "Height of the committed head on this node.",
		}, func() float64 { return float64(n.chain.Head().Height) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sequencer_raft_term", Help: "Current Raft term.",
		}, func() float64 { return float64(n.raft.Progress().Term) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sequencer_mempool_txs", Help: "Transactions waiting in the mempool.",
		}, func() float64 { return float64(n.pool.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sequencer_mempool_bytes", Help: "Bytes of transactions waiting in the mempool.",
		}, func() float64 { return float64(n.pool.Bytes()) }),
	)
	return m
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Proposed implements failover.Observer.
func (m *metrics) Proposed(_ uint64, took time.Duration, err error) {
	if err != nil {
		m.proposalErrors.Inc()
		return
	}
	m.commitLatency.Observe(took.Seconds())
}

// LeadershipAcquired implements failover.Observer.
func (m *metrics) LeadershipAcquired(barrier time.Duration) { m.takeover.Observe(barrier.Seconds()) }

// Transferred implements failover.Observer.
func (m *metrics) Transferred(reason string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.transfers.WithLabelValues(reason, result).Inc()
}
