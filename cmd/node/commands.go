package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/failover"
	sraft "github.com/seqops/sequencer-operator/pkg/raft"
	"github.com/seqops/sequencer-operator/pkg/sequencer"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// envPrefix: every flag --foo-bar can also be given as SEQ_FOO_BAR.
const envPrefix = "SEQ_"

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "node",
		Short:         "Raft-replicated blockchain sequencer node",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCommand(), newKeygenCommand(), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version) },
	})
	return root
}

func newKeygenCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Write a new ed25519 signing key (PKCS#8 PEM) shared by all members",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			pub, err := chain.GenerateKeyFile(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (public key %x)\n", out, []byte(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the private key to (must not exist)")
	return cmd
}

// runFlags are the flags of `node run`; each is documented in its usage string.
type runFlags struct {
	id, chainID, dataDir                     string
	raftAddr, raftAdvertise, httpAddr        string
	bootstrap                                bool
	bootstrapID, initialClusterState, join   string
	apiTokenFile, signingKeyFile             string
	blockTime                                time.Duration
	heartbeat, election, leaderLease, commit time.Duration
	snapshotThreshold, trailingLogs          uint64
	snapshotInterval                         time.Duration
	recoveryFile                             string
	maxTxsPerBlock                           int
	stabilization                            time.Duration
	tlsCert, tlsKey, tlsCA                   string
	logLevel                                 string
	terminationMessagePath                   string
}

func newRunCommand() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a sequencer node",
		Long: "Run a sequencer node. Every flag can also be set through the environment as SEQ_<FLAG>,\n" +
			"upper-case with dashes as underscores (e.g. SEQ_CHAIN_ID); a flag on the command line wins.",
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := run(cmd.Context(), f)
			if werr := writeTerminationMessage(f.terminationMessagePath, err); werr != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "node:", werr)
			}
			return err
		},
	}
	d := sraft.DefaultTimings()
	fs := cmd.Flags()
	fs.StringVar(&f.id, "id", "", "this node's Raft ID, unique in the cluster (the pod name in Kubernetes)")
	fs.StringVar(&f.chainID, "chain-id", "", "chain ID; blocks of another chain are refused")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for the chain store and Raft state")
	fs.StringVar(&f.raftAddr, "raft-addr", "0.0.0.0:7000", "address the Raft transport listens on")
	fs.StringVar(&f.raftAdvertise, "raft-advertise", "", "address peers dial for Raft, a stable DNS name in Kubernetes (default: --raft-addr when it names a host)")
	fs.StringVar(&f.httpAddr, "http-addr", "0.0.0.0:8080", "address of the node API; peers reach it on this port at the host of their Raft address")
	fs.BoolVar(&f.bootstrap, "bootstrap", false, "bootstrap a one-member cluster if no Raft state exists and the cluster is new")
	fs.StringVar(&f.bootstrapID, "bootstrap-id", "", "bootstrap like --bootstrap, but only if this node's --id equals this value (one pod template for all members)")
	fs.StringVar(&f.initialClusterState, "initial-cluster-state", sequencer.ClusterStateNew, "\"new\" or \"existing\"; with \"existing\" the node never bootstraps and waits to be added")
	fs.StringVar(&f.join, "join", "", "node API URL of any member; at start, ask it to add this node as a non-voter (idempotent)")
	fs.StringVar(&f.apiTokenFile, "api-token-file", "", "file holding the bearer token for membership and transfer calls")
	fs.StringVar(&f.signingKeyFile, "signing-key-file", "", "ed25519 signing key (PKCS#8 PEM) shared by all members; `node keygen` writes one")
	fs.DurationVar(&f.blockTime, "block-time", 100*time.Millisecond, "target interval between blocks")
	fs.DurationVar(&f.heartbeat, "heartbeat-timeout", d.Heartbeat, "Raft heartbeat timeout: a follower calls an election after this long without the leader")
	fs.DurationVar(&f.election, "election-timeout", d.Election, "Raft election timeout (at least the heartbeat timeout)")
	fs.DurationVar(&f.leaderLease, "leader-lease-timeout", d.LeaderLease, "Raft leader lease: a leader cut off from a quorum steps down after this long")
	fs.DurationVar(&f.commit, "commit-timeout", d.Commit, "Raft commit timeout: how long the leader batches before replicating")
	fs.Uint64Var(&f.snapshotThreshold, "snapshot-threshold", 0, "new log entries that trigger a Raft snapshot (default 2048)")
	fs.Uint64Var(&f.trailingLogs, "trailing-logs", 0, "log entries kept after a snapshot for lagging followers (default 2048)")
	fs.DurationVar(&f.snapshotInterval, "snapshot-interval", 0, "how often Raft checks whether to take a snapshot (default 20s)")
	fs.IntVar(&f.maxTxsPerBlock, "max-txs-per-block", 0, "most transactions in one block (default 10000)")
	fs.DurationVar(&f.stabilization, "autopilot-stabilization-time", 0, "how long a non-voter must be healthy before autopilot promotes it (default 2s)")
	fs.StringVar(&f.tlsCert, "tls-cert-file", "", "PEM certificate for mutual TLS on the Raft transport and the node API (with --tls-key-file and --tls-ca-file)")
	fs.StringVar(&f.tlsKey, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.StringVar(&f.tlsCA, "tls-ca-file", "", "PEM CA bundle that peers' certificates must chain to")
	fs.StringVar(&f.recoveryFile, "recovery-file", "", "hashicorp/raft peers JSON applied once at start to recover from a lost quorum (docs/runbook.md); ignored when absent or already applied")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.terminationMessagePath, "termination-message-path", "", "file the kubelet mounts for the container's termination message (/dev/termination-log); a fatal error is written there when it exists")
	return cmd
}

// applyEnv sets every flag not given on the command line from SEQ_<FLAG>, when that is set.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := fs.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("invalid %s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func run(ctx context.Context, f runFlags) error {
	log, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	cfg, err := f.config()
	if err != nil {
		return err
	}
	cfg.Version = version
	node, err := sequencer.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := node.Start(ctx, true); err != nil {
		node.Kill()
		return err
	}
	log.Info("Node started", zap.String("id", cfg.ID), zap.String("raft", cfg.RaftAdvertise), zap.String("api", node.Addr()))
	select {
	case <-ctx.Done():
		log.Info("Stopping: handing leadership over if leading")
		stopCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := node.Stop(stopCtx); err != nil {
			return fmt.Errorf("unclean stop: %w", err)
		}
		log.Info("Stopped")
		return nil
	case err := <-node.Fatal():
		node.Kill()
		return fmt.Errorf("node stopped: %w", err)
	}
}

func (f runFlags) config() (sequencer.Config, error) {
	var errs []error
	advertise := f.raftAdvertise
	if advertise == "" {
		host, _, err := net.SplitHostPort(f.raftAddr)
		if err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
			errs = append(errs, fmt.Errorf("--raft-advertise is required when --raft-addr %q names no host", f.raftAddr))
		}
		advertise = f.raftAddr
	}
	cfg := sequencer.Config{
		ID:                  f.id,
		ChainID:             f.chainID,
		DataDir:             f.dataDir,
		RaftBind:            f.raftAddr,
		RaftAdvertise:       advertise,
		HTTPAddr:            f.httpAddr,
		Bootstrap:           f.bootstrap || (f.bootstrapID != "" && f.bootstrapID == f.id),
		InitialClusterState: f.initialClusterState,
		Join:                f.join,
		Producer:            failover.Config{BlockTime: f.blockTime, MaxTxsPerBlock: f.maxTxsPerBlock},
		Timings:             sraft.Timings{Heartbeat: f.heartbeat, Election: f.election, LeaderLease: f.leaderLease, Commit: f.commit},
		SnapshotThreshold:   f.snapshotThreshold,
		TrailingLogs:        f.trailingLogs,
		SnapshotInterval:    f.snapshotInterval,
		RecoveryFile:        f.recoveryFile,
		Autopilot:           sraft.AutopilotConfig{StabilizationTime: f.stabilization},
	}
	if f.blockTime <= 0 {
		errs = append(errs, fmt.Errorf("--block-time %v must be positive", f.blockTime))
	}
	if f.signingKeyFile == "" {
		errs = append(errs, errors.New("--signing-key-file is required (create one with `node keygen --out FILE`)"))
	} else if key, err := chain.LoadSigningKey(f.signingKeyFile); err != nil {
		errs = append(errs, err)
	} else {
		cfg.SigningKey = key
	}
	if f.apiTokenFile != "" {
		data, err := os.ReadFile(f.apiTokenFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("cannot read --api-token-file: %w", err))
		case strings.TrimSpace(string(data)) == "":
			errs = append(errs, fmt.Errorf("--api-token-file %s is empty", f.apiTokenFile))
		default:
			cfg.APIToken = strings.TrimSpace(string(data))
		}
	}
	if f.tlsCert != "" || f.tlsKey != "" || f.tlsCA != "" {
		server, client, err := loadTLS(f.tlsCert, f.tlsKey, f.tlsCA)
		if err != nil {
			errs = append(errs, err)
		} else {
			cfg.RaftTLS = &sraft.TransportTLS{Server: server, Client: client}
			cfg.APITLS, cfg.APIClientTLS = server, client
		}
	}
	if len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}
	return cfg, cfg.Validate()
}

// loadTLS builds mutual-TLS configurations: peers must present a certificate from the CA.
func loadTLS(certFile, keyFile, caFile string) (server, client *tls.Config, err error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, nil, errors.New("--tls-cert-file, --tls-key-file and --tls-ca-file go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot load TLS key pair %s, %s: %w", certFile, keyFile, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read --tls-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("--tls-ca-file %s holds no PEM certificate", caFile)
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client, nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "time"
	cfg.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	cfg.Sampling = nil
	return cfg.Build()
}
