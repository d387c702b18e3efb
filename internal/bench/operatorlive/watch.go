package operatorlive

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// view is the state of the SequencerClusters and node pods after some prefix of the watch events.
type view struct {
	clusters map[string]*seqv1.SequencerCluster // by namespace/name
	pods     map[string]*corev1.Pod             // by namespace/name
}

func newView() *view {
	return &view{clusters: map[string]*seqv1.SequencerCluster{}, pods: map[string]*corev1.Pod{}}
}

func (v *view) apply(e objEvent) {
	switch {
	case e.cluster != nil && e.deleted:
		delete(v.clusters, e.key)
	case e.cluster != nil:
		v.clusters[e.key] = e.cluster
	case e.pod != nil && e.deleted:
		delete(v.pods, e.key)
	case e.pod != nil:
		v.pods[e.key] = e.pod
	}
}

func (v *view) clone() *view {
	c := newView()
	for k, o := range v.clusters {
		c.clusters[k] = o
	}
	for k, o := range v.pods {
		c.pods[k] = o
	}
	return c
}

// cluster returns the SequencerCluster namespace/name, nil when absent.
func (v *view) cluster(ns, name string) *seqv1.SequencerCluster { return v.clusters[ns+"/"+name] }

// clusterPods are the pods of one SequencerCluster, by pod name.
func (v *view) clusterPods(ns, name string) map[string]*corev1.Pod {
	out := map[string]*corev1.Pod{}
	for _, p := range v.pods {
		if p.Namespace == ns && p.Labels[seqv1.LabelCluster] == name {
			out[p.Name] = p
		}
	}
	return out
}

// objEvent is one informer notification, stamped when the benchmark received it. Objects are never
// mutated after they are recorded, so views share them.
type objEvent struct {
	at      time.Time
	key     string
	cluster *seqv1.SequencerCluster
	pod     *corev1.Pod
	deleted bool
}

// objectLog follows every SequencerCluster and every node pod (label seqops.io/cluster) through
// informers and keeps all notifications in arrival order, so a wait can find the first moment a
// condition held, at the resolution of the watch rather than of a polling interval.
type objectLog struct {
	mu     sync.Mutex
	events []objEvent
	latest *view
	notify chan struct{}
}

// startObjectLog starts the informers; they stop with ctx.
func startObjectLog(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) (*objectLog, error) {
	c, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("cannot create the informer cache: %w", err)
	}
	l := &objectLog{notify: make(chan struct{}), latest: newView()}
	for _, obj := range []client.Object{&seqv1.SequencerCluster{}, &corev1.Pod{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("cannot get an informer for %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { l.add(o, false) },
			UpdateFunc: func(_, o any) { l.add(o, false) },
			DeleteFunc: func(o any) { l.add(o, true) },
		}); err != nil {
			return nil, fmt.Errorf("cannot watch %T: %w", obj, err)
		}
	}
	go func() { _ = c.Start(ctx) }()
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !c.WaitForCacheSync(syncCtx) {
		return nil, errors.New("the informer cache did not sync within a minute")
	}
	return l, nil
}

func (l *objectLog) add(o any, deleted bool) {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	e := objEvent{at: time.Now(), deleted: deleted}
	switch obj := o.(type) {
	case *seqv1.SequencerCluster:
		e.cluster, e.key = obj, obj.Namespace+"/"+obj.Name
	case *corev1.Pod:
		if _, ok := obj.Labels[seqv1.LabelCluster]; !ok {
			return
		}
		e.pod, e.key = obj, obj.Namespace+"/"+obj.Name
	default:
		return
	}
	l.mu.Lock()
	l.events = append(l.events, e)
	l.latest.apply(e)
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
}

// mark is a position in the log: waits started from it see only later events as news.
func (l *objectLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// now is a copy of the current view.
func (l *objectLog) now() *view {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.latest.clone()
}

// podIP is the IP of pod namespace/name as last seen, empty while it has none.
func (l *objectLog) podIP(ns, name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.latest.pods[ns+"/"+name]; p != nil {
		return p.Status.PodIP
	}
	return ""
}

// waitFor returns the receive time of the first event from position from on after which cond holds
// (or time.Now() if it already holds at from), and the view then. It gives up after timeout.
func (l *objectLog) waitFor(ctx context.Context, from int, timeout time.Duration, what string, cond func(*view) bool) (time.Time, *view, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	l.mu.Lock()
	events := l.events
	l.mu.Unlock()
	v := newView()
	for _, e := range events[:from] {
		v.apply(e)
	}
	if cond(v) {
		return time.Now(), v, nil
	}
	for {
		l.mu.Lock()
		events, notify := l.events, l.notify
		l.mu.Unlock()
		for ; from < len(events); from++ {
			v.apply(events[from])
			if cond(v) {
				return events[from].at, v.clone(), nil
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, nil, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-deadline.C:
			return time.Time{}, nil, fmt.Errorf("%s did not happen within %s", what, timeout)
		case <-notify:
		}
	}
}
