// Package nodeproc runs real `node` processes as a cluster on loopback, for process tests, benchmarks
// and the fault campaign. Each node gets its own loopback address (127.a.b.1, .2, ...) so all share one
// Raft port and one API port, as pods do in Kubernetes.
package nodeproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// Options describe a cluster to start.
type Options struct {
	// Bin is the node binary.
	Bin string
	// Dir holds each node's data dir, log, the signing key and the token.
	Dir string
	// Size is the number of nodes (default 3).
	Size int
	// Args are extra flags for every node (timings, block time).
	Args []string
}

// Cluster is a running set of node processes.
type Cluster struct {
	opts      Options
	raftPort  int
	httpPort  int
	ipPrefix  string
	Token     string
	Nodes     []*Proc
	keyFile   string
	tokenFile string
}

// Proc is one node process.
type Proc struct {
	ID     string
	IP     string
	Dir    string
	Log    string
	API    string
	Client *nodeapi.Client

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	exit   error
}

// Start writes a signing key and a token, starts the first node with --bootstrap and the others with
// --join, and waits until every node is a voter.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Size == 0 {
		opts.Size = 3
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", opts.Dir, err)
	}
	c := &Cluster{opts: opts, keyFile: filepath.Join(opts.Dir, "signing.key"), tokenFile: filepath.Join(opts.Dir, "token")}
	if err := c.pickAddresses(); err != nil {
		return nil, err
	}
	if out, err := exec.Command(opts.Bin, "keygen", "--out", c.keyFile).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cannot create signing key: %v: %s", err, out)
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	c.Token = hex.EncodeToString(tok)
	if err := os.WriteFile(c.tokenFile, []byte(c.Token), 0o600); err != nil {
		return nil, fmt.Errorf("cannot write token: %w", err)
	}
	for i := 0; i < opts.Size; i++ {
		ip := fmt.Sprintf("%s.%d", c.ipPrefix, i+1)
		p := &Proc{
			ID:  fmt.Sprintf("node-%d", i),
			IP:  ip,
			Dir: filepath.Join(opts.Dir, fmt.Sprintf("node-%d", i)),
			Log: filepath.Join(opts.Dir, fmt.Sprintf("node-%d.log", i)),
			API: fmt.Sprintf("http://%s:%d", ip, c.httpPort),
		}
		p.Client = nodeapi.NewClient(p.API, nodeapi.WithToken(c.Token), nodeapi.WithHTTPClient(shortClient()))
		c.Nodes = append(c.Nodes, p)
	}
	for i, p := range c.Nodes {
		extra := []string{"--join", c.Nodes[0].API}
		if i == 0 {
			extra = []string{"--bootstrap"}
		}
		if err := c.launch(p, extra...); err != nil {
			c.StopAll()
			return nil, err
		}
	}
	if err := c.WaitVoters(ctx, opts.Size); err != nil {
		c.StopAll()
		return nil, err
	}
	return c, nil
}

func shortClient() *http.Client { return &http.Client{Timeout: 5 * time.Second} }

// pickAddresses chooses a random 127.a.b.0/24 and a Raft and an API port free on all its addresses.
func (c *Cluster) pickAddresses() error {
	for attempt := 0; attempt < 50; attempt++ {
		a, _ := rand.Int(rand.Reader, big.NewInt(200))
		b, _ := rand.Int(rand.Reader, big.NewInt(250))
		c.ipPrefix = fmt.Sprintf("127.%d.%d", a.Int64()+20, b.Int64()+1)
		raftPort := 20000 + int(a.Int64())*100 + int(b.Int64())%100
		httpPort := raftPort + 10000
		if c.portsFree(raftPort) && c.portsFree(httpPort) {
			c.raftPort, c.httpPort = raftPort, httpPort
			return nil
		}
	}
	return errors.New("cannot find free loopback ports")
}

func (c *Cluster) portsFree(port int) bool {
	for i := 1; i <= c.opts.Size; i++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(fmt.Sprintf("%s.%d", c.ipPrefix, i), strconv.Itoa(port)))
		if err != nil {
			return false
		}
		_ = ln.Close()
	}
	return true
}

func (c *Cluster) launch(p *Proc, extra ...string) error {
	args := []string{"run",
		"--id", p.ID, "--chain-id", "proc-test", "--data-dir", p.Dir,
		"--raft-addr", net.JoinHostPort(p.IP, strconv.Itoa(c.raftPort)),
		"--http-addr", net.JoinHostPort(p.IP, strconv.Itoa(c.httpPort)),
		"--signing-key-file", c.keyFile, "--api-token-file", c.tokenFile,
	}
	args = append(args, c.opts.Args...)
	args = append(args, extra...)
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open log of %s: %w", p.ID, err)
	}
	cmd := exec.Command(c.opts.Bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("cannot start %s: %w", p.ID, err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.exit = cmd, exited, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		p.mu.Lock()
		p.exit = err
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

// Kill sends SIGKILL to the node and waits for it to die.
func (c *Cluster) Kill(p *Proc) { p.signal(syscall.SIGKILL) }

// Stop sends SIGTERM and waits; it returns the process's exit error (nil for exit 0).
func (c *Cluster) Stop(p *Proc) error { return p.signal(syscall.SIGTERM) }

// Restart starts a stopped node again on its data dir; it rejoins as the member it was.
func (c *Cluster) Restart(p *Proc) error { return c.launch(p) }

// RestartWith starts a stopped node again with extra flags.
func (c *Cluster) RestartWith(p *Proc, args ...string) error { return c.launch(p, args...) }

// Running reports whether the process is alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Pid is the process ID, 0 when not running.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil || exited == nil {
		return nil
	}
	select {
	case <-exited:
	default:
		_ = cmd.Process.Signal(sig)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%s did not exit within 30s of %v", p.ID, sig)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

// StopAll kills every node.
func (c *Cluster) StopAll() {
	for _, p := range c.Nodes {
		c.Kill(p)
	}
}

// Leader returns the node every running node agrees leads and that is producing.
func (c *Cluster) Leader(ctx context.Context) (*Proc, error) {
	for {
		for _, p := range c.Nodes {
			if !p.Running() {
				continue
			}
			st, err := p.Client.Status(ctx)
			if err == nil && st.Producing {
				return p, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no producing leader: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// WaitVoters waits until the leader's configuration has n voters.
func (c *Cluster) WaitVoters(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		leader, err := c.Leader(ctx)
		if err != nil {
			return err
		}
		if cfg, err := leader.Client.Members(ctx); err == nil {
			voters := 0
			for _, s := range cfg.Servers {
				if s.Suffrage == nodeapi.SuffrageVoter {
					voters++
				}
			}
			if voters == n {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d voters: %w", n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitHeight waits until every running node's head is at least h.
func (c *Cluster) WaitHeight(ctx context.Context, h uint64) error {
	for {
		low := uint64(0)
		ok := true
		for _, p := range c.Nodes {
			if !p.Running() {
				continue
			}
			st, err := p.Client.Status(ctx)
			if err != nil || st.Height < h {
				ok = false
				if err == nil {
					low = st.Height
				}
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for height %d (a node is at %d): %w", h, low, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
