package operatorlive

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/seqops/sequencer-operator/internal/localcluster"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// nodeEvent is one status document from a pod's /raft/watch stream, stamped on arrival.
type nodeEvent struct {
	at  time.Time
	pod string
	st  nodeapi.Status
}

// nodeLog follows the /raft/watch streams of a set of pods, reconnecting while a pod is down, and keeps
// every document in arrival order.
type nodeLog struct {
	mu     sync.Mutex
	events []nodeEvent
	notify chan struct{}
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// nodeURL is a pod's node API by its stable peer DNS name, which the local cluster resolves from the host.
func nodeURL(ns, cluster, pod string) string {
	return fmt.Sprintf("http://%s.%s-peers.%s.svc.cluster.local:8080", pod, cluster, ns)
}

// nodeClient is a client for a node API at base from the host. timeout 0 suits watch streams.
func nodeClient(lc *localcluster.Cluster, base string, timeout time.Duration) *nodeapi.Client {
	return nodeapi.NewClient(base, nodeapi.WithHTTPClient(&http.Client{
		Timeout: timeout,
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			// A pod IP whose namespace is not wired yet swallows SYNs; fail fast and let the caller retry.
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			return lc.DialContext(ctx, network, addr)
		}},
	}))
}

// startNodeLog follows the watch streams of pods; podIP gives a pod's current IP ("" while it has none),
// which spares each reconnect a DNS lookup.
func startNodeLog(ctx context.Context, lc *localcluster.Cluster, podIP func(pod string) string, pods []string) *nodeLog {
	ctx, cancel := context.WithCancel(ctx)
	l := &nodeLog{notify: make(chan struct{}), cancel: cancel}
	for _, p := range pods {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for ctx.Err() == nil {
				if ip := podIP(p); ip != "" {
					_ = nodeClient(lc, "http://"+net.JoinHostPort(ip, "8080"), 0).Watch(ctx, func(s nodeapi.Status) error {
						l.add(nodeEvent{at: time.Now(), pod: p, st: s})
						return nil
					})
				}
				// A killed pod refuses connections until its container restarts; retry soon so its first
				// documents after the restart are seen.
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	return l
}

func (l *nodeLog) stop() {
	l.cancel()
	l.done.Wait()
}

func (l *nodeLog) add(e nodeEvent) {
	l.mu.Lock()
	l.events = append(l.events, e)
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
}

func (l *nodeLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// since is a copy of the documents from position from on.
func (l *nodeLog) since(from int) []nodeEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]nodeEvent(nil), l.events[from:]...)
}

// waitFor returns the first document from position from on that match accepts.
func (l *nodeLog) waitFor(ctx context.Context, from int, timeout time.Duration, what string, match func(nodeEvent) bool) (nodeEvent, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		events, notify := l.events, l.notify
		l.mu.Unlock()
		for ; from < len(events); from++ {
			if match(events[from]) {
				return events[from], nil
			}
		}
		select {
		case <-ctx.Done():
			return nodeEvent{}, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-deadline.C:
			return nodeEvent{}, fmt.Errorf("%s did not happen within %s", what, timeout)
		case <-notify:
		}
	}
}

// raftLeader asks every pod for /raft and returns the one that reports itself leader in the highest
// term (a deposed leader may not have noticed yet).
func raftLeader(ctx context.Context, lc *localcluster.Cluster, ns, cluster string, pods []string) (string, *nodeapi.Status, error) {
	var leader string
	var best *nodeapi.Status
	var errs []error
	for _, p := range pods {
		st, err := nodeClient(lc, nodeURL(ns, cluster, p), 2*time.Second).Status(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		if st.State == nodeapi.StateLeader && (best == nil || st.Term > best.Term) {
			leader, best = p, st
		}
	}
	if best == nil {
		return "", nil, fmt.Errorf("no pod of %s/%s reports itself Raft leader: %w", ns, cluster, errors.Join(errs...))
	}
	return leader, best, nil
}
