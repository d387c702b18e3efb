package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// ErrTimeout is wrapped by Promote's error when the switchover did not finish in time.
var ErrTimeout = errors.New("timed out")

// RejectedError is Promote's error when the operator refused the switchover; Message is the operator's reason.
type RejectedError struct {
	Target  string
	Message string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("the operator refused to make %s the leader: %s", e.Target, e.Message)
}

// PromoteOptions tune Promote.
type PromoteOptions struct {
	// Timeout bounds the wait for the new leader; it must be positive.
	Timeout time.Duration
	// PollInterval is how often the cluster is read while waiting.
	PollInterval time.Duration
	// Progress, when set, receives a line when the request is made.
	Progress io.Writer
}

// PromoteResult describes a finished switchover.
type PromoteResult struct {
	// Leader is the pod that leads now (the target).
	Leader string
	// PreviousLeader led before the request; empty when the cluster had no leader.
	PreviousLeader string
	// Term is the Raft term the operator reports for the new leader.
	Term int64
	// Elapsed is how long the switchover took as seen from here.
	Elapsed time.Duration
	// AlreadyLeader is true when the target already led and nothing was requested.
	AlreadyLeader bool
}

// settleTime is how long Promote keeps waiting after the operator removed the request when the only sign of
// a refusal is a SwitchoverRejected condition that was already there before: the operator removes the
// annotation and writes status in one pass, but in two writes, so the status may lag by a moment.
const settleTime = 2 * time.Second

// Promote asks the operator to hand leadership of a cluster to target (a pod name) by setting the
// seqops.io/transfer-leader-to annotation, then waits until status.leader is target and the annotation is
// gone. It fails fast on requests the operator could not act on (paused cluster, unknown pod, another
// switchover pending), returns a *RejectedError when the operator refuses, and an error wrapping ErrTimeout
// when opts.Timeout passes first; the request then stays pending, which the error says.
func Promote(ctx context.Context, c client.Client, key client.ObjectKey, target string, opts PromoteOptions) (PromoteResult, error) {
	if opts.Timeout <= 0 {
		return PromoteResult{}, fmt.Errorf("--timeout must be positive, got %s", opts.Timeout)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 500 * time.Millisecond
	}
	start := time.Now()
	sc, err := getCluster(ctx, c, key)
	if err != nil {
		return PromoteResult{}, err
	}
	pending := sc.Annotations[seqv1.AnnotationTransferLeaderTo]
	switch {
	case pending != "" && pending != target:
		return PromoteResult{}, fmt.Errorf("a switchover of %s to %s is already pending; wait for it, or cancel it with: %s",
			key, pending, cancelHint(key))
	case pending == "" && sc.Status.Leader == target:
		return PromoteResult{Leader: target, PreviousLeader: target, Term: sc.Status.Term, AlreadyLeader: true}, nil
	case sc.Spec.Paused:
		return PromoteResult{}, fmt.Errorf("%s is paused (spec.paused): the operator makes no switchover until it is resumed", key)
	}
	if names := memberNames(sc); !slices.Contains(names, target) {
		return PromoteResult{}, fmt.Errorf("%s is not a member of %s (members: %s)", target, key, orNone(strings.Join(names, ", ")))
	}

	previous := sc.Status.Leader
	before := meta.FindStatusCondition(sc.Status.Conditions, seqv1.ConditionProgressing)
	if pending == "" {
		if err := requestSwitchover(ctx, c, sc, target); err != nil {
			return PromoteResult{}, err
		}
	}
	if opts.Progress != nil {
		fmt.Fprintf(opts.Progress, "Asked the operator to hand leadership of %s from %s to %s; waiting up to %s\n",
			key, orNone(previous), target, opts.Timeout)
	}

	deadline := time.NewTimer(opts.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(opts.PollInterval)
	defer tick.Stop()
	var goneSince time.Time // when the annotation was first seen removed
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			return PromoteResult{}, fmt.Errorf("stopped waiting for %s to lead %s: %w; the request may still be pending: %s",
				target, key, ctx.Err(), cancelHint(key))
		case <-deadline.C:
			return PromoteResult{}, timeoutError(ctx, c, key, target, opts.Timeout, lastErr)
		case <-tick.C:
		}
		sc, err := getCluster(ctx, c, key)
		if apierrors.IsNotFound(err) {
			return PromoteResult{}, err
		}
		if err != nil {
			// A failed read (apiserver restart, throttling) is retried until the deadline.
			lastErr = err
			continue
		}
		lastErr = nil
		switch now := sc.Annotations[seqv1.AnnotationTransferLeaderTo]; {
		case now == target:
			continue // not acted on yet
		case now != "":
			return PromoteResult{}, fmt.Errorf("the switchover request on %s was replaced by one to %s", key, now)
		}
		if sc.Status.Leader == target {
			return PromoteResult{Leader: target, PreviousLeader: previous, Term: sc.Status.Term, Elapsed: time.Since(start)}, nil
		}
		if goneSince.IsZero() {
			goneSince = time.Now()
		}
		cond := meta.FindStatusCondition(sc.Status.Conditions, seqv1.ConditionProgressing)
		if cond == nil || cond.Reason != seqv1.ReasonSwitchoverRejected {
			continue
		}
		fresh := before == nil || before.Reason != cond.Reason || before.Message != cond.Message
		if fresh || time.Since(goneSince) >= settleTime {
			return PromoteResult{}, &RejectedError{Target: target, Message: cond.Message}
		}
	}
}

// requestSwitchover sets the annotation with a merge patch, which leaves every other field alone.
func requestSwitchover(ctx context.Context, c client.Client, sc *seqv1.SequencerCluster, target string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{seqv1.AnnotationTransferLeaderTo: target},
	}})
	if err != nil {
		return fmt.Errorf("cannot build annotation patch: %w", err)
	}
	if err := c.Patch(ctx, sc, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("cannot set annotation %s on %s/%s: %w", seqv1.AnnotationTransferLeaderTo, sc.Namespace, sc.Name, err)
	}
	return nil
}

// timeoutError says what the cluster looks like when the wait ran out, and whether the request is still pending.
func timeoutError(ctx context.Context, c client.Client, key client.ObjectKey, target string, timeout time.Duration, lastErr error) error {
	sc, err := getCluster(ctx, c, key)
	if err != nil {
		if lastErr == nil {
			lastErr = err
		}
		return fmt.Errorf("%w after %s waiting for %s to lead %s (last read failed: %v)", ErrTimeout, timeout, target, key, lastErr)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "leader is %s, phase %s", orNone(sc.Status.Leader), orNone(string(sc.Status.Phase)))
	// What the operator is busy with explains a slow switchover; an old refusal of another pod would mislead.
	if cond := meta.FindStatusCondition(sc.Status.Conditions, seqv1.ConditionProgressing); cond != nil && cond.Message != "" &&
		(cond.Status == metav1.ConditionTrue || strings.Contains(cond.Message, `"`+target+`"`)) {
		fmt.Fprintf(&b, " (%s: %s)", cond.Reason, cond.Message)
	}
	if sc.Annotations[seqv1.AnnotationTransferLeaderTo] == target {
		b.WriteString("; the request is still pending (is the operator running?); cancel it with: " + cancelHint(key))
	} else {
		b.WriteString("; the operator removed the request but " + target + " does not lead")
	}
	return fmt.Errorf("%w after %s waiting for %s to lead %s: %s", ErrTimeout, timeout, target, key, b.String())
}

// getCluster reads a cluster, with errors that say which cluster and, when the CRD is missing, what to do.
func getCluster(ctx context.Context, c client.Client, key client.ObjectKey) (*seqv1.SequencerCluster, error) {
	sc := &seqv1.SequencerCluster{}
	if err := c.Get(ctx, key, sc); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("SequencerCluster %s not found: %w", key, err)
		case meta.IsNoMatchError(err):
			return nil, fmt.Errorf("cannot get SequencerCluster %s: the CRD sequencerclusters.seqops.io is not installed in this cluster: %w", key, err)
		}
		return nil, fmt.Errorf("cannot get SequencerCluster %s: %w", key, err)
	}
	return sc, nil
}

func memberNames(sc *seqv1.SequencerCluster) []string {
	names := make([]string, 0, len(sc.Status.Members))
	for _, m := range sc.Status.Members {
		names = append(names, m.Name)
	}
	return names
}

func cancelHint(key client.ObjectKey) string {
	return fmt.Sprintf("kubectl annotate sequencercluster -n %s %s %s-", key.Namespace, key.Name, seqv1.AnnotationTransferLeaderTo)
}
