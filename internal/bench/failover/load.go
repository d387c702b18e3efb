package failover

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seqops/sequencer-operator/internal/nodeproc"
)

// load submits unique 100-byte transactions at a steady rate, round-robin over the running nodes
// (followers forward to the leader), without waiting for commit. It stops with ctx or Stop.
type load struct {
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	sent, refused atomic.Int64
}

func startLoad(ctx context.Context, c *nodeproc.Cluster, perSecond int) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel}
	if perSecond <= 0 {
		return l
	}
	jobs := make(chan int64, 64)
	const workers = 4
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func(w int) {
			defer l.wg.Done()
			for n := range jobs {
				p := c.Nodes[int(n)%len(c.Nodes)]
				if !p.Running() {
					p = c.Nodes[int(n+1)%len(c.Nodes)]
				}
				rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := p.Client.SubmitTx(rctx, tx(n), false)
				rcancel()
				if err != nil {
					l.refused.Add(1)
				} else {
					l.sent.Add(1)
				}
			}
		}(w)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(jobs)
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		var n int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				n++
				select {
				case jobs <- n:
				default: // workers are behind: drop rather than queue without bound
				}
			}
		}
	}()
	return l
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// tx is a unique 100-byte key/value transaction.
func tx(n int64) []byte {
	s := fmt.Sprintf("set bench%012d ", n)
	return []byte(s + strings.Repeat("v", 100-len(s)))
}
