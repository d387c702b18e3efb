package sequencer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/failover"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
	sraft "github.com/seqops/sequencer-operator/pkg/raft"
)

// Node is one running sequencer node.
type Node struct {
	cfg      Config
	log      *zap.Logger
	chain    *chain.Chain
	pool     *chain.Mempool
	signer   *chain.Signer
	raft     *sraft.Node
	fsm      *sraft.FSM
	manager  *failover.Manager
	waiters  *txWaiters
	metrics  *metrics
	api      *nodeapi.Server
	changes  *sraft.Signal
	backfill *backfiller
	peerAPI  func(raftAddr string) string
	client   *http.Client

	httpServer *http.Server
	listener   net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	fatal  chan error

	stopOnce sync.Once
	stopErr  error
}

// Option changes how a node is assembled (tests).
type Option func(*Node)

// WithPeerAPI replaces the mapping from a peer's Raft address to its node API URL.
func WithPeerAPI(fn func(raftAddr string) string) Option { return func(n *Node) { n.peerAPI = fn } }

// New assembles a node: it opens the chain and Raft state and decides about bootstrapping, but
// serves nothing until Start.
func New(cfg Config, log *zap.Logger, opts ...Option) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid node configuration: %w", err)
	}
	if cfg.APITLS != nil {
		// The API checks a client certificate when one is presented (peers present theirs) but does not
		// require one: the operator and users read status trusting the CA alone, and membership and
		// transfer calls need the bearer token. The Raft transport requires certificates.
		api := cfg.APITLS.Clone()
		api.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.APITLS = api
	}
	if log == nil {
		log = zap.NewNop()
	}
	n := &Node{cfg: cfg, log: log, changes: sraft.NewSignal(), fatal: make(chan error, 1)}
	n.client = &http.Client{Timeout: 10 * time.Second}
	if cfg.APIClientTLS != nil {
		n.client.Transport = &http.Transport{TLSClientConfig: cfg.APIClientTLS}
	}
	port, _ := cfg.apiPort()
	scheme := "http"
	if cfg.APITLS != nil {
		scheme = "https"
	}
	n.peerAPI = func(raftAddr string) string {
		host, _, err := net.SplitHostPort(raftAddr)
		if err != nil {
			return ""
		}
		return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
	}
	for _, o := range opts {
		o(n)
	}

	n.signer = chain.NewSigner(cfg.SigningKey)
	chainDir := filepath.Join(cfg.DataDir, "chain")
	if cfg.InMemoryRaft && cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "seq-chain-")
		if err != nil {
			return nil, fmt.Errorf("cannot create chain directory: %w", err)
		}
		chainDir = dir
	}
	c, err := chain.Open(chain.Config{Dir: chainDir, ChainID: cfg.ChainID, Proposer: n.signer.PublicKey(), Executor: cfg.Executor})
	if err != nil {
		return nil, fmt.Errorf("cannot open chain: %w", err)
	}
	n.chain = c
	n.pool = chain.NewMempool(cfg.MempoolTxs, cfg.MempoolBytes, cfg.MaxTxBytes)
	n.waiters = newTxWaiters()
	n.metrics = newMetrics(n)
	n.backfill = newBackfiller(n)
	n.fsm = sraft.NewFSM(c, n.onCommit, n.backfill.wake)

	raftLog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr, JSONFormat: true})
	rn, err := sraft.NewNode(sraft.Config{
		ID:                cfg.ID,
		DataDir:           filepath.Join(cfg.DataDir, "raft"),
		BindAddr:          cfg.RaftBind,
		Advertise:         cfg.RaftAdvertise,
		Timings:           cfg.Timings,
		SnapshotThreshold: cfg.SnapshotThreshold,
		TrailingLogs:      cfg.TrailingLogs,
		SnapshotInterval:  cfg.SnapshotInterval,
		TLS:               cfg.RaftTLS,
		InMemory:          cfg.InMemoryRaft,
		Autopilot:         cfg.Autopilot,
		ClusterExists:     cfg.InitialClusterState == ClusterStateExisting,
		RecoveryFile:      cfg.RecoveryFile,
	}, n.fsm, n.fetchStats, raftLog)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	n.raft = rn
	n.manager = failover.New(cfg.Producer, rn, c, n.pool, n.signer, n.waiters, n.metrics, log.Named("producer"))
	n.api = nodeapi.NewServer(n, nodeapi.ServerConfig{
		Token:         cfg.APIToken,
		Metrics:       promhttp.HandlerFor(n.metrics.registry, promhttp.HandlerOpts{}),
		ForwardClient: n.client,
		MaxTxBytes:    int64(cfg.MaxTxBytes),
		TxWait:        cfg.TxWait,
	})
	return n, nil
}

// Raft exposes the Raft server (tests wire in-memory transports through it).
func (n *Node) Raft() *sraft.Node { return n.raft }

// Chain exposes the chain for reads.
func (n *Node) Chain() *chain.Chain { return n.chain }

// Handler is the node API.
func (n *Node) Handler() http.Handler { return n.api }

// Fatal delivers an error that stopped the node from doing its job, e.g. an invalid block in the log.
// The process should exit non-zero on it.
func (n *Node) Fatal() <-chan error { return n.fatal }

// Start bootstraps if DecideBootstrap says so, starts the role manager, history backfill, the join
// request and, when listen is true, the HTTP server on HTTPAddr.
func (n *Node) Start(ctx context.Context, listen bool) error {
	n.ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	hasState, err := n.raft.HasState()
	if err != nil {
		return err
	}
	decision := DecideBootstrap(n.cfg.Bootstrap, hasState, n.cfg.InitialClusterState)
	n.log.Info("Bootstrap decision", zap.Bool("bootstrap", decision.Bootstrap), zap.String("reason", decision.Reason))
	if decision.Bootstrap {
		if err := n.raft.Bootstrap(); err != nil {
			return err
		}
	}
	if listen {
		ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("cannot listen for the node API on %s: %w", n.cfg.HTTPAddr, err)
		}
		n.listener = ln
		n.httpServer = &http.Server{Handler: n.api, ReadHeaderTimeout: 10 * time.Second, TLSConfig: n.cfg.APITLS}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			var err error
			if n.cfg.APITLS != nil {
				err = n.httpServer.ServeTLS(ln, "", "")
			} else {
				err = n.httpServer.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.fail(fmt.Errorf("node API server stopped: %w", err))
			}
		}()
	}
	n.wg.Add(5)
	go func() { defer n.wg.Done(); n.endRejoinWhenCaughtUp(n.ctx) }()
	go func() { defer n.wg.Done(); n.manager.Run(n.ctx) }()
	go func() { defer n.wg.Done(); n.relayRaftChanges(n.ctx) }()
	go func() { defer n.wg.Done(); n.backfill.run(n.ctx) }()
	go func() {
		defer n.wg.Done()
		select {
		case <-n.ctx.Done():
		case err := <-n.fsm.Halted():
			n.log.Error("Chain halted: refusing to go on from an invalid log entry", zap.Error(err))
			n.fail(err)
		}
	}()
	if n.cfg.Join != "" {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.join(n.ctx) }()
	}
	return nil
}

// Addr is the node API's listen address once started.
func (n *Node) Addr() string {
	if n.listener == nil {
		return ""
	}
	return n.listener.Addr().String()
}

func (n *Node) fail(err error) {
	select {
	case n.fatal <- err:
	default:
	}
	n.changes.Notify()
}

// Stop shuts the node down gracefully: if it leads, it hands leadership over first, so the chain
// misses at most one block slot; then it stops serving and closes its stores.
func (n *Node) Stop(ctx context.Context) error {
	n.stopOnce.Do(func() {
		var errs []error
		if err := n.manager.Resign(); err != nil {
			n.log.Warn("Leaving without handing leadership over", zap.Error(err))
		}
		if n.httpServer != nil {
			n.api.Close() // watchers reconnect to another node at once instead of holding the shutdown
			shutdownCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := n.httpServer.Shutdown(shutdownCtx); err != nil {
				_ = n.httpServer.Close()
			}
			cancel()
		}
		if n.cancel != nil {
			n.cancel()
		}
		if err := n.raft.Shutdown(); err != nil {
			errs = append(errs, err)
		}
		n.wg.Wait()
		if err := n.chain.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cannot close chain: %w", err))
		}
		n.stopErr = errors.Join(errs...)
	})
	return n.stopErr
}

// Kill stops the node abruptly, without handing leadership over (tests of failover).
func (n *Node) Kill() {
	n.stopOnce.Do(func() {
		if n.httpServer != nil {
			_ = n.httpServer.Close()
		}
		if n.cancel != nil {
			n.cancel()
		}
		_ = n.raft.Shutdown()
		n.wg.Wait()
		_ = n.chain.Close()
	})
}

// relayRaftChanges turns Raft's leadership and membership changes into status changes.
func (n *Node) relayRaftChanges(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.raft.Changes():
			n.changes.Notify()
		}
	}
}

// endRejoinWhenCaughtUp lets a rejoining node vote again once it has been a non-voter (so its old voter
// entry, which counted a log it lost, is gone) and holds the committed log. Until then it reports
// rejoining, which is how the operator knows to re-add it as a non-voter. Historical blocks still being
// backfilled do not matter for voting: Raft's safety is about the log.
func (n *Node) endRejoinWhenCaughtUp(ctx context.Context) {
	for n.raft.Rejoining() {
		changed := n.changes.Changed()
		if cfg, err := n.raft.Configuration(); err == nil {
			if m, ok := cfg.Has(n.cfg.ID); ok && !m.Voter {
				if err := n.raft.NoteNonvoter(); err != nil {
					n.log.Error("Cannot record rejoin progress", zap.Error(err))
				}
			}
		}
		if n.raft.SeenNonvoter() && n.caughtUpMember() {
			if err := n.raft.EndRejoin(); err != nil {
				n.log.Error("Cannot end rejoin", zap.Error(err))
			} else {
				n.log.Info("Caught up after rejoining: voting again")
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

func (n *Node) caughtUpMember() bool {
	if n.fsm.Err() != nil {
		return false
	}
	cfg, err := n.raft.Configuration()
	if err != nil {
		return false
	}
	if _, ok := cfg.Has(n.cfg.ID); !ok {
		return false
	}
	p := n.raft.Progress()
	lid, _ := n.raft.Leader()
	return lid != "" && p.AppliedIndex > 0 && p.CommitIndex <= p.AppliedIndex+catchUpThreshold
}

// onCommit runs on Raft's apply goroutine for every newly committed block.
func (n *Node) onCommit(c sraft.Committed) {
	n.waiters.committed(c.Block)
	n.metrics.blocksCommitted.Inc()
	n.metrics.txsCommitted.Add(float64(len(c.Block.GetTxs())))
	n.changes.Notify()
}
