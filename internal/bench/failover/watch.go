// Package failover measures our node processes: SIGKILL of the leader under load (failover) and
// planned hand-overs (switchover). It runs real `node` processes through internal/nodeproc and
// follows every node's /raft/watch stream, so times are when the benchmark saw each change.
package failover

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/seqops/sequencer-operator/internal/nodeproc"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// event is one status document from a node's watch stream.
type event struct {
	at        time.Time
	node      int
	state     string
	term      uint64
	height    uint64
	producing bool
}

// watcher follows every node's /raft/watch and keeps all documents in arrival order.
type watcher struct {
	mu     sync.Mutex
	log    []event
	notify chan struct{}
}

func newWatcher(ctx context.Context, c *nodeproc.Cluster) *watcher {
	w := &watcher{notify: make(chan struct{})}
	for i, p := range c.Nodes {
		go func(i int, p *nodeproc.Proc) {
			// Reconnect while the benchmark runs: a killed node's stream breaks and comes back on restart.
			for ctx.Err() == nil {
				if p.Running() {
					_ = p.Client.Watch(ctx, func(s nodeapi.Status) error {
						w.add(event{at: time.Now(), node: i, state: s.State, term: s.Term, height: s.Height, producing: s.Producing})
						return nil
					})
				}
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Millisecond):
				}
			}
		}(i, p)
	}
	return w
}

func (w *watcher) add(e event) {
	w.mu.Lock()
	w.log = append(w.log, e)
	close(w.notify)
	w.notify = make(chan struct{})
	w.mu.Unlock()
}

func (w *watcher) mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.log)
}

// since returns a copy of the events from position from on.
func (w *watcher) since(from int) []event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]event(nil), w.log[from:]...)
}

// waitFor scans events from position from until match returns true, bounded by timeout.
func (w *watcher) waitFor(ctx context.Context, from int, timeout time.Duration, match func(event) bool) (event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		log, notify := w.log, w.notify
		w.mu.Unlock()
		for ; from < len(log); from++ {
			if match(log[from]) {
				return log[from], nil
			}
		}
		select {
		case <-ctx.Done():
			return event{}, ctx.Err()
		case <-deadline.C:
			return event{}, errors.New("timed out")
		case <-notify:
		}
	}
}
