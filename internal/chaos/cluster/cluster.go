// Package cluster runs real `node` processes for the fault campaign, each in its own network
// namespace of a netlab.Lab, listening on <ip>:7000 (Raft) and <ip>:8080 (API) as pods do. It
// signals, restarts and wipes them, and performs the membership calls the operator would.
package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/internal/chaos/netlab"
	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// Ports every node uses on its own address.
const (
	RaftPort = 7000
	APIPort  = 8080
)

// Options describe the cluster.
type Options struct {
	Bin     string
	Dir     string
	Lab     *netlab.Lab
	ChainID string
	// Args are extra flags for every node (timings, block time, snapshots).
	Args []string
}

// Cluster is the set of node processes.
type Cluster struct {
	opts      Options
	Token     string
	KeyFile   string
	Proposer  ed25519.PublicKey
	Nodes     []*Node
	spawn     chan spawnReq
	wipes     int
	archiveMu sync.Mutex
	archives  []string
}

// Node is one member.
type Node struct {
	Index   int
	ID      string
	IP      string
	DataDir string
	Log     string
	API     string
	Client  *nodeapi.Client

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
}

// RaftAddr is the node's Raft address.
func (n *Node) RaftAddr() string { return net.JoinHostPort(n.IP, fmt.Sprint(RaftPort)) }

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// Start writes the shared signing key and API token, starts node 0 with --bootstrap and the others
// with --join, and waits until all are voters.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", opts.Dir, err)
	}
	c := &Cluster{opts: opts, KeyFile: filepath.Join(opts.Dir, "signing.key"), spawn: make(chan spawnReq)}
	go c.spawner()
	if out, err := exec.Command(opts.Bin, "keygen", "--out", c.KeyFile).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cannot create signing key: %v: %s", err, out)
	}
	key, err := chain.LoadSigningKey(c.KeyFile)
	if err != nil {
		return nil, err
	}
	c.Proposer = key.Public().(ed25519.PublicKey)
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("cannot make a token: %w", err)
	}
	c.Token = hex.EncodeToString(tok)
	if err := os.WriteFile(filepath.Join(opts.Dir, "token"), []byte(c.Token), 0o600); err != nil {
		return nil, fmt.Errorf("cannot write token: %w", err)
	}
	for i, ln := range opts.Lab.Nodes {
		n := &Node{
			Index:   i,
			ID:      fmt.Sprintf("node-%d", i),
			IP:      ln.IP.String(),
			DataDir: filepath.Join(opts.Dir, fmt.Sprintf("node-%d", i)),
			Log:     filepath.Join(opts.Dir, fmt.Sprintf("node-%d.log", i)),
			API:     fmt.Sprintf("http://%s", net.JoinHostPort(ln.IP.String(), fmt.Sprint(APIPort))),
		}
		n.Client = nodeapi.NewClient(n.API, nodeapi.WithToken(c.Token), nodeapi.WithHTTPClient(&http.Client{Timeout: 2 * time.Second}))
		c.Nodes = append(c.Nodes, n)
	}
	for i, n := range c.Nodes {
		extra := []string{"--join", c.Nodes[0].API}
		if i == 0 {
			extra = []string{"--bootstrap"}
		}
		if err := c.launch(n, extra...); err != nil {
			c.KillAll()
			return nil, err
		}
	}
	if err := c.WaitRecovered(ctx, 60*time.Second); err != nil {
		c.KillAll()
		return nil, fmt.Errorf("cluster did not form: %w", err)
	}
	return c, nil
}

// spawner starts every process from one locked OS thread: the kernel's parent-death signal fires
// when the thread that forked a child exits, and the Go runtime may end other threads.
func (c *Cluster) spawner() {
	runtime.LockOSThread()
	for req := range c.spawn {
		req.done <- req.cmd.Start()
	}
}

func (c *Cluster) launch(n *Node, extra ...string) error {
	args := []string{c.opts.Bin, "run",
		"--id", n.ID, "--chain-id", c.opts.ChainID, "--data-dir", n.DataDir,
		"--raft-addr", n.RaftAddr(),
		"--http-addr", net.JoinHostPort(n.IP, fmt.Sprint(APIPort)),
		"--signing-key-file", c.KeyFile, "--api-token-file", filepath.Join(c.opts.Dir, "token"),
	}
	args = append(args, c.opts.Args...)
	args = append(args, extra...)
	logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open log of %s: %w", n.ID, err)
	}
	fmt.Fprintf(logf, "=== %s start %v\n", time.Now().Format(time.RFC3339Nano), extra)
	cmd := c.opts.Lab.Exec(n.Index, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done := make(chan error, 1)
	c.spawn <- spawnReq{cmd: cmd, done: done}
	if err := <-done; err != nil {
		_ = logf.Close()
		return fmt.Errorf("cannot start %s: %w", n.ID, err)
	}
	exited := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited, n.paused = cmd, exited, false
	n.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(exited)
	}()
	return nil
}

// Running reports whether the process is alive (paused counts as alive).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Up reports whether the node can answer: running and not paused.
func (n *Node) Up() bool {
	n.mu.Lock()
	paused := n.paused
	n.mu.Unlock()
	return !paused && n.Running()
}

// signal sends sig; for SIGKILL and SIGTERM it waits up to 30s for the exit (then kills).
func (n *Node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	n.mu.Unlock()
	if cmd == nil || !n.Running() {
		if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
			return nil
		}
		return fmt.Errorf("%s is not running", n.ID)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("cannot send %v to %s: %w", sig, n.ID, err)
	}
	if sig != syscall.SIGKILL && sig != syscall.SIGTERM {
		return nil
	}
	select {
	case <-exited:
		return nil
	case <-time.After(30 * time.Second):
		// SIGQUIT makes the Go runtime write every goroutine's stack to the node's log, which is
		// what it takes to see where a stop hung.
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		return fmt.Errorf("%s did not exit within 30s of %v (goroutine dump in %s)", n.ID, sig, n.Log)
	}
}

// Kill sends SIGKILL and waits for the exit.
func (c *Cluster) Kill(n *Node) error { return n.signal(syscall.SIGKILL) }

// Term sends SIGTERM (a leader hands over first) and waits for the exit.
func (c *Cluster) Term(n *Node) error { return n.signal(syscall.SIGTERM) }

// Pause sends SIGSTOP.
func (c *Cluster) Pause(n *Node) error { return n.signal(syscall.SIGSTOP) }

// Resume sends SIGCONT.
func (c *Cluster) Resume(n *Node) error { return n.signal(syscall.SIGCONT) }

// Restart starts a stopped node on its data dir.
func (c *Cluster) Restart(n *Node) error {
	if n.Running() {
		return fmt.Errorf("cannot restart %s: still running", n.ID)
	}
	return c.launch(n)
}

// KillAll kills every node (paused ones too: SIGKILL needs no SIGCONT).
func (c *Cluster) KillAll() {
	for _, n := range c.Nodes {
		_ = c.Kill(n)
	}
}

// Archives are the data dirs moved aside by Wipe, for the checker to read.
func (c *Cluster) Archives() []string {
	c.archiveMu.Lock()
	defer c.archiveMu.Unlock()
	return append([]string(nil), c.archives...)
}

// Wipe replaces a stopped node's data dir with an empty one the way the operator recovers a lost
// disk: remove the member from Raft, start it with --initial-cluster-state existing (it refuses to
// vote until caught up), add it back as a non-voter; autopilot promotes it. The old dir is kept
// aside so the checker can compare what it held.
func (c *Cluster) Wipe(ctx context.Context, n *Node) error {
	if n.Running() {
		return fmt.Errorf("cannot wipe %s: still running", n.ID)
	}
	leader, err := c.Leader(ctx, 15*time.Second)
	if err != nil {
		return fmt.Errorf("cannot wipe %s: %w", n.ID, err)
	}
	if _, err := retry(ctx, func(ctx context.Context) (*nodeapi.Configuration, error) {
		cfg, err := leader.Client.RemoveMember(ctx, n.ID, 0)
		if nodeapi.IsNotFound(err) {
			return cfg, nil
		}
		return cfg, err
	}); err != nil {
		return fmt.Errorf("cannot remove %s from raft: %w", n.ID, err)
	}
	c.archiveMu.Lock()
	c.wipes++
	archive := filepath.Join(c.opts.Dir, "wiped", fmt.Sprintf("%s-%d", n.ID, c.wipes))
	c.archiveMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(archive), 0o755); err != nil {
		return fmt.Errorf("cannot wipe %s: %w", n.ID, err)
	}
	if err := os.Rename(n.DataDir, archive); err != nil {
		return fmt.Errorf("cannot wipe %s: %w", n.ID, err)
	}
	c.archiveMu.Lock()
	c.archives = append(c.archives, archive)
	c.archiveMu.Unlock()
	if err := c.launch(n, "--initial-cluster-state", "existing"); err != nil {
		return err
	}
	if _, err := retry(ctx, func(ctx context.Context) (*nodeapi.Configuration, error) {
		l, err := c.Leader(ctx, 10*time.Second)
		if err != nil {
			return nil, err
		}
		return l.Client.AddMember(ctx, nodeapi.AddMemberRequest{ID: n.ID, Address: n.RaftAddr()})
	}); err != nil {
		return fmt.Errorf("cannot add %s back: %w", n.ID, err)
	}
	return nil
}

// retry calls fn until it succeeds, at most 20 times over about 20s.
func retry[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var last error
	var zero T
	for i := 0; i < 20; i++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := fn(cctx)
		cancel()
		if err == nil {
			return v, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return zero, last
}

// Leader returns the node that leads and produces, with the highest term if two claim to (an
// isolated old leader has not noticed yet).
func (c *Cluster) Leader(ctx context.Context, timeout time.Duration) (*Node, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var best *Node
		var bestTerm uint64
		for _, st := range c.statuses(ctx) {
			if st.status.Producing && st.status.State == nodeapi.StateLeader && (best == nil || st.status.Term > bestTerm) {
				best, bestTerm = st.node, st.status.Term
			}
		}
		if best != nil {
			return best, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no producing leader within %v", timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Followers are the up nodes other than leader, in index order.
func (c *Cluster) Followers(leader *Node) []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n != leader {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

type nodeStatus struct {
	node   *Node
	status *nodeapi.Status
}

// statuses asks every up node for its status in parallel.
func (c *Cluster) statuses(ctx context.Context) []nodeStatus {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var out []nodeStatus
	for _, n := range c.Nodes {
		if !n.Up() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := n.Client.Status(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			out = append(out, nodeStatus{n, st})
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// WaitRecovered waits until every node runs, the leader's configuration has every node as a voter,
// and every node has applied the leader's head as of the start of the wait and is neither catching
// up nor rejoining.
func (c *Cluster) WaitRecovered(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var why error
	for {
		why = c.recovered(ctx)
		if why == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not recovered within %v: %w", timeout, why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) recovered(ctx context.Context) error {
	for _, n := range c.Nodes {
		if !n.Up() {
			return fmt.Errorf("%s is not running", n.ID)
		}
	}
	leader, err := c.Leader(ctx, 2*time.Second)
	if err != nil {
		return err
	}
	cfg, err := leader.Client.Members(ctx)
	if err != nil {
		return fmt.Errorf("cannot read members: %w", err)
	}
	voters := 0
	for _, s := range cfg.Servers {
		if s.Suffrage == nodeapi.SuffrageVoter {
			voters++
		}
	}
	if voters != len(c.Nodes) || len(cfg.Servers) != len(c.Nodes) {
		return fmt.Errorf("%d voters of %d members, want %d", voters, len(cfg.Servers), len(c.Nodes))
	}
	lst, err := leader.Client.Status(ctx)
	if err != nil {
		return err
	}
	sts := c.statuses(ctx)
	if len(sts) != len(c.Nodes) {
		return fmt.Errorf("%d of %d nodes answer", len(sts), len(c.Nodes))
	}
	for _, st := range sts {
		s := st.status
		if s.Height < lst.Height || s.CatchingUp || s.Rejoining {
			return fmt.Errorf("%s at height %d (leader %d), catching up %v, rejoining %v", st.node.ID, s.Height, lst.Height, s.CatchingUp, s.Rejoining)
		}
	}
	return nil
}
