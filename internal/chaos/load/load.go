// Package load is the fault campaign's transaction generator. Workers submit unique "set" transactions
// round-robin over the nodes and wait for commit; a transaction that was not acknowledged is
// resubmitted with the same bytes (the node promises a committed transaction is never included
// twice). Every attempt and its answer go to a JSON-lines log, which the checker reads afterwards.
package load

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// Attempt is one submission of a transaction and what came of it.
type Attempt struct {
	// Tx identifies the transaction (worker-sequence); attempts of one Tx carry the same bytes.
	Tx string `json:"tx"`
	// Try counts the attempts of this Tx from 0.
	Try int `json:"try"`
	// Hash is the hex sha256 of the transaction bytes.
	Hash string `json:"hash"`
	// Node is the index of the node the attempt was sent to.
	Node  int       `json:"node"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Acked is true when the node answered "committed"; Height is then the block it named.
	Acked  bool   `json:"acked"`
	Height uint64 `json:"height,omitempty"`
	Err    string `json:"err,omitempty"`
}

// Submitter is the part of the node API client the generator uses.
type Submitter interface {
	SubmitTx(ctx context.Context, tx []byte, wait bool) (*nodeapi.TxResponse, error)
}

// Config tunes the generator.
type Config struct {
	// Workers submit concurrently (default 8).
	Workers int
	// Keys is how many keys the "set" transactions write (default 16), so writes contend.
	Keys int
	// Timeout bounds one attempt (default 3s).
	Timeout time.Duration
	// MaxTries bounds the attempts of one transaction (default 30); after that it is abandoned and
	// may or may not be in the chain.
	MaxTries int
	// Up, when set, says whether node i should get traffic now (a killed node gets none).
	Up func(i int) bool
}

// Generator runs the workers.
type Generator struct {
	cfg     Config
	nodes   []Submitter
	mu      sync.Mutex
	enc     *json.Encoder
	out     *bufio.Writer
	file    *os.File
	writeEr error
	counts  Counts
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Counts summarise what the generator did.
type Counts struct {
	Txs, Attempts, Acked, Abandoned int
}

// Start opens the log at path and starts the workers.
func Start(ctx context.Context, path string, nodes []Submitter, cfg Config) (*Generator, error) {
	if len(nodes) == 0 {
		return nil, errors.New("cannot start load: no nodes")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Keys <= 0 {
		cfg.Keys = 16
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.MaxTries <= 0 {
		cfg.MaxTries = 30
	}
	if cfg.Up == nil {
		cfg.Up = func(int) bool { return true }
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cannot create load log: %w", err)
	}
	g := &Generator{cfg: cfg, nodes: nodes, file: f, out: bufio.NewWriterSize(f, 64<<10)}
	g.enc = json.NewEncoder(g.out)
	ctx, g.cancel = context.WithCancel(ctx)
	for w := 0; w < cfg.Workers; w++ {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.work(ctx, w)
		}()
	}
	return g, nil
}

// TxBytes is the transaction a worker sends as its seq-th: a write of a unique value to one of keys.
func TxBytes(worker, seq, keys int) []byte {
	return fmt.Appendf(nil, "set k%d w%d-%d", (worker*7919+seq)%keys, worker, seq)
}

func (g *Generator) work(ctx context.Context, w int) {
	next := w // spread workers over the nodes
	for seq := 0; ctx.Err() == nil; seq++ {
		tx := TxBytes(w, seq, g.cfg.Keys)
		id := fmt.Sprintf("w%d-%d", w, seq)
		hash := hex.EncodeToString(chain.TxHash(tx))
		acked := false
		tries := 0
		for ; tries < g.cfg.MaxTries && ctx.Err() == nil && !acked; tries++ {
			node := g.pick(&next)
			a := Attempt{Tx: id, Try: tries, Hash: hash, Node: node, Start: time.Now()}
			actx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
			resp, err := g.nodes[node].SubmitTx(actx, tx, true)
			cancel()
			a.End = time.Now()
			switch {
			case err != nil:
				a.Err = err.Error()
			case resp.Status != nodeapi.TxCommitted:
				a.Err = "answered " + resp.Status
			case resp.Hash != hash:
				a.Err = fmt.Sprintf("answered hash %s for %s", resp.Hash, hash)
			default:
				a.Acked, a.Height = true, resp.Height
				acked = true
			}
			if ctx.Err() != nil && !a.Acked {
				a.Err = "load stopped: " + a.Err // the answer was cut short by the end of the run
			}
			g.record(a, tries == 0)
			if !acked {
				sleepCtx(ctx, 50*time.Millisecond)
			}
		}
		if !acked {
			g.mu.Lock()
			g.counts.Abandoned++
			g.mu.Unlock()
		}
	}
}

// pick returns the next node that is up, round-robin; if none is, the next one anyway.
func (g *Generator) pick(next *int) int {
	for i := 0; i < len(g.nodes); i++ {
		n := (*next + i) % len(g.nodes)
		if g.cfg.Up(n) {
			*next = n + 1
			return n
		}
	}
	n := *next % len(g.nodes)
	*next = n + 1
	return n
}

func (g *Generator) record(a Attempt, first bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.counts.Attempts++
	if first {
		g.counts.Txs++
	}
	if a.Acked {
		g.counts.Acked++
	}
	if err := g.enc.Encode(a); err != nil && g.writeEr == nil {
		g.writeEr = fmt.Errorf("cannot write load log: %w", err)
	}
}

// Counts returns the running totals.
func (g *Generator) Counts() Counts {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.counts
}

// Stop ends the workers, waits for their last answers and closes the log.
func (g *Generator) Stop() (Counts, error) {
	g.cancel()
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	err := g.writeEr
	if ferr := g.out.Flush(); ferr != nil && err == nil {
		err = fmt.Errorf("cannot write load log: %w", ferr)
	}
	if cerr := g.file.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("cannot close load log: %w", cerr)
	}
	return g.counts, err
}

// ReadLog parses a load log.
func ReadLog(r io.Reader) ([]Attempt, error) {
	var out []Attempt
	dec := json.NewDecoder(r)
	for {
		var a Attempt
		err := dec.Decode(&a)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("cannot read load log entry %d: %w", len(out)+1, err)
		}
		out = append(out, a)
	}
}

// ReadLogFile parses the load log at path.
func ReadLogFile(path string) ([]Attempt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open load log: %w", err)
	}
	defer f.Close()
	return ReadLog(f)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
