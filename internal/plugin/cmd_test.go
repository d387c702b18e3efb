package plugin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// kubeconfig's current context points at namespace "rollups"; the server is never contacted because the
// commands get the fake client.
const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:1
users:
- name: test
  user:
    token: test
contexts:
- name: test
  context:
    cluster: test
    user: test
    namespace: rollups
- name: other
  context:
    cluster: test
    user: test
    namespace: elsewhere
current-context: test
`

func newFakeClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := seqv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithStatusSubresource(&seqv1.SequencerCluster{}).Build()
}

// run executes `kubectl sequencer args...` with the real kubeconfig flags against the fake client.
func run(t *testing.T, ctx context.Context, c client.Client, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd := NewRootCommand(Config{
		Streams:      genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
		NewClient:    func(*rest.Config) (client.Client, error) { return c, nil },
		Now:          func() time.Time { return now },
		PollInterval: 10 * time.Millisecond,
	})
	cmd.SetArgs(append([]string{"--kubeconfig", path}, args...))
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestStatusCommand(t *testing.T) {
	c := newFakeClient(t, healthyCluster())
	out, _, err := run(t, context.Background(), c, "status", "demo")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var want bytes.Buffer
	if err := PrintStatus(&want, healthyCluster(), now); err != nil {
		t.Fatal(err)
	}
	if out != want.String() {
		t.Errorf("status output:\n%s\nwant:\n%s", out, want.String())
	}
}

func TestNamespaceFlags(t *testing.T) {
	other := healthyCluster()
	other.Namespace = "elsewhere"
	other.Status.Leader = "demo-2"
	c := newFakeClient(t, healthyCluster(), other)
	tests := []struct {
		args       []string
		wantLeader string
	}{
		{[]string{"status", "demo"}, "leader demo-1"},                        // the context's namespace
		{[]string{"status", "demo", "-n", "elsewhere"}, "leader demo-2"},     // -n wins
		{[]string{"--context", "other", "status", "demo"}, "leader demo-2"},  // another context
		{[]string{"status", "--namespace=rollups", "demo"}, "leader demo-1"}, // long form
	}
	for _, tt := range tests {
		out, _, err := run(t, context.Background(), c, tt.args...)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if !strings.Contains(out, tt.wantLeader) {
			t.Errorf("%v: output does not say %q:\n%s", tt.args, tt.wantLeader, out)
		}
	}
}

func TestMembersCommand(t *testing.T) {
	c := newFakeClient(t, healthyCluster())
	out, _, err := run(t, context.Background(), c, "members", "demo")
	if err != nil {
		t.Fatalf("members: %v", err)
	}
	if !strings.HasPrefix(out, "ID ") || strings.Count(out, "\n") != 4 || strings.Contains(out, "demo-3") {
		t.Errorf("members output: want a header and the three Raft members, got:\n%s", out)
	}
}

func TestCommandErrors(t *testing.T) {
	c := newFakeClient(t, healthyCluster())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"status", "nope"}, "SequencerCluster rollups/nope not found"},
		{[]string{"members", "demo", "-n", "empty"}, "SequencerCluster empty/demo not found"},
		{[]string{"status"}, "accepts 1 arg(s), received 0"},
		{[]string{"promote", "demo"}, "accepts 2 arg(s), received 1"},
		{[]string{"promote", "demo", "demo-2", "--timeout", "0s"}, "--timeout must be positive"},
	}
	for _, tt := range tests {
		_, _, err := run(t, context.Background(), c, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one containing %q", tt.args, err, tt.want)
		}
	}
}

// operator plays the operator's part of a switchover: once the annotation names a pod it calls act, which
// changes the cluster the way the controller does. It stops when ctx ends or act returns true.
func operator(ctx context.Context, t *testing.T, c client.Client, act func(sc *seqv1.SequencerCluster, target string) bool) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
			sc := &seqv1.SequencerCluster{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "rollups", Name: "demo"}, sc); err != nil {
				continue
			}
			if target := sc.Annotations[seqv1.AnnotationTransferLeaderTo]; target != "" && act(sc, target) {
				return
			}
		}
	}()
	return done
}

// clearAnnotation removes the request with a merge patch, as the controller's clearTransferAnnotation does.
func clearAnnotation(t *testing.T, c client.Client, sc *seqv1.SequencerCluster) {
	patch := []byte(`{"metadata":{"annotations":{"` + seqv1.AnnotationTransferLeaderTo + `":null}}}`)
	if err := c.Patch(context.Background(), sc, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Errorf("operator: cannot clear annotation: %v", err)
	}
}

func updateStatus(t *testing.T, c client.Client, mutate func(*seqv1.SequencerCluster)) {
	sc := &seqv1.SequencerCluster{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "rollups", Name: "demo"}, sc); err != nil {
		t.Errorf("operator: %v", err)
		return
	}
	mutate(sc)
	if err := c.Status().Update(context.Background(), sc); err != nil {
		t.Errorf("operator: cannot update status: %v", err)
	}
}

func TestPromoteSucceeds(t *testing.T) {
	tests := []struct {
		name  string
		conds []metav1.Condition
	}{
		{name: "fresh cluster"},
		{
			// A refusal from an earlier attempt must not be mistaken for this attempt's outcome while the
			// operator's status write lags its annotation write.
			name: "an earlier refusal of the same pod is still in the status",
			conds: []metav1.Condition{{Type: seqv1.ConditionProgressing, Status: metav1.ConditionFalse,
				Reason: seqv1.ReasonSwitchoverRejected, Message: `cannot transfer leadership to "demo-0": it is catching up (lag 3)`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := healthyCluster()
			sc.Status.Conditions = tt.conds
			c := newFakeClient(t, sc)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := operator(ctx, t, c, func(sc *seqv1.SequencerCluster, target string) bool {
				// The controller clears the annotation and then, in a second write, patches status.
				clearAnnotation(t, c, sc)
				time.Sleep(100 * time.Millisecond)
				updateStatus(t, c, func(sc *seqv1.SequencerCluster) {
					sc.Status.Leader, sc.Status.Term = target, sc.Status.Term+1
				})
				return true
			})
			out, stderr, err := run(t, ctx, c, "promote", "demo", "demo-0", "--timeout", "10s")
			if err != nil {
				t.Fatalf("promote: %v", err)
			}
			<-done
			if !strings.Contains(stderr, "from demo-1 to demo-0") {
				t.Errorf("progress line missing from stderr: %q", stderr)
			}
			if !strings.HasPrefix(out, "demo-0 now leads rollups/demo (term 5, previously demo-1)") {
				t.Errorf("promote output = %q", out)
			}
		})
	}
}

func TestPromoteRejected(t *testing.T) {
	const why = `cannot transfer leadership to "demo-2": it is catching up (lag 872)`
	c := newFakeClient(t, healthyCluster())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	operator(ctx, t, c, func(sc *seqv1.SequencerCluster, target string) bool {
		clearAnnotation(t, c, sc)
		updateStatus(t, c, func(sc *seqv1.SequencerCluster) {
			meta.SetStatusCondition(&sc.Status.Conditions, metav1.Condition{Type: seqv1.ConditionProgressing,
				Status: metav1.ConditionFalse, Reason: seqv1.ReasonSwitchoverRejected, Message: why})
		})
		return true
	})
	start := time.Now()
	_, _, err := run(t, ctx, c, "promote", "demo", "demo-2", "--timeout", "10s")
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Message != why {
		t.Fatalf("promote error = %v, want a RejectedError with the operator's message", err)
	}
	if !strings.Contains(err.Error(), "switchover of rollups/demo failed") {
		t.Errorf("error does not name the cluster: %v", err)
	}
	if elapsed := time.Since(start); elapsed > settleTime {
		t.Errorf("a fresh refusal took %s to report; it should not wait for the settle time", elapsed)
	}
}

func TestPromoteRejectedAgainForTheSameReason(t *testing.T) {
	const why = `cannot transfer leadership to "demo-2": it is catching up (lag 872)`
	sc := healthyCluster()
	sc.Status.Conditions = []metav1.Condition{{Type: seqv1.ConditionProgressing, Status: metav1.ConditionFalse,
		Reason: seqv1.ReasonSwitchoverRejected, Message: why}}
	c := newFakeClient(t, sc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The operator refuses again with the same message: the status does not change at all.
	operator(ctx, t, c, func(sc *seqv1.SequencerCluster, _ string) bool { clearAnnotation(t, c, sc); return true })
	start := time.Now()
	_, _, err := run(t, ctx, c, "promote", "demo", "demo-2", "--timeout", "10s")
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Message != why {
		t.Fatalf("promote error = %v, want a RejectedError with the operator's message", err)
	}
	if elapsed := time.Since(start); elapsed < settleTime || elapsed > 5*time.Second {
		t.Errorf("a repeated refusal was reported after %s; want after the settle time (%s), well before the timeout", elapsed, settleTime)
	}
}

func TestPromoteTimesOut(t *testing.T) {
	c := newFakeClient(t, healthyCluster())
	_, _, err := run(t, context.Background(), c, "promote", "demo", "demo-0", "--timeout", "200ms")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("promote error = %v, want ErrTimeout", err)
	}
	for _, want := range []string{"leader is demo-1", "still pending", "kubectl annotate sequencercluster -n rollups demo seqops.io/transfer-leader-to-"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("timeout error does not say %q: %v", want, err)
		}
	}
	// No operator acted: the request stays for it, as the error says.
	sc := &seqv1.SequencerCluster{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "rollups", Name: "demo"}, sc); err != nil {
		t.Fatal(err)
	}
	if got := sc.Annotations[seqv1.AnnotationTransferLeaderTo]; got != "demo-0" {
		t.Errorf("annotation = %q, want demo-0", got)
	}
}

func TestPromoteTimeoutExplains(t *testing.T) {
	tests := []struct {
		name     string
		cond     metav1.Condition
		wantNote bool
	}{
		{
			name:     "the operator is busy: say with what",
			cond:     metav1.Condition{Type: seqv1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: seqv1.ReasonScalingUp, Message: "adding demo-3 as a non-voter"},
			wantNote: true,
		},
		{
			name: "an old refusal of another pod is not the reason",
			cond: metav1.Condition{Type: seqv1.ConditionProgressing, Status: metav1.ConditionFalse, Reason: seqv1.ReasonSwitchoverRejected,
				Message: `cannot transfer leadership to "demo-2": it is a Nonvoter, not a voter`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := healthyCluster()
			sc.Status.Conditions = []metav1.Condition{tt.cond}
			_, _, err := run(t, context.Background(), newFakeClient(t, sc), "promote", "demo", "demo-0", "--timeout", "100ms")
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("promote error = %v, want ErrTimeout", err)
			}
			if got := strings.Contains(err.Error(), tt.cond.Message); got != tt.wantNote {
				t.Errorf("error mentions %q: %t, want %t\n%v", tt.cond.Message, got, tt.wantNote, err)
			}
		})
	}
}

func TestPromoteRefusedBeforeAsking(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*seqv1.SequencerCluster)
		target  string
		wantErr string
	}{
		{
			name:    "paused",
			mutate:  func(c *seqv1.SequencerCluster) { c.Spec.Paused = true },
			target:  "demo-0",
			wantErr: "rollups/demo is paused",
		},
		{
			name:    "not a member",
			target:  "demo-7",
			wantErr: "demo-7 is not a member of rollups/demo (members: demo-0, demo-1, demo-2, demo-3)",
		},
		{
			name: "another switchover pending",
			mutate: func(c *seqv1.SequencerCluster) {
				c.Annotations = map[string]string{seqv1.AnnotationTransferLeaderTo: "demo-2"}
			},
			target:  "demo-0",
			wantErr: "a switchover of rollups/demo to demo-2 is already pending",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := healthyCluster()
			if tt.mutate != nil {
				tt.mutate(sc)
			}
			before := sc.Annotations[seqv1.AnnotationTransferLeaderTo]
			c := newFakeClient(t, sc)
			_, _, err := run(t, context.Background(), c, "promote", "demo", tt.target)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("promote error = %v, want one containing %q", err, tt.wantErr)
			}
			got := &seqv1.SequencerCluster{}
			if err := c.Get(context.Background(), client.ObjectKey{Namespace: "rollups", Name: "demo"}, got); err != nil {
				t.Fatal(err)
			}
			if a := got.Annotations[seqv1.AnnotationTransferLeaderTo]; a != before {
				t.Errorf("annotation changed to %q; a refused request must not be made", a)
			}
		})
	}
}

func TestPromoteAlreadyLeader(t *testing.T) {
	c := newFakeClient(t, healthyCluster())
	out, _, err := run(t, context.Background(), c, "promote", "demo", "demo-1")
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	if want := "demo-1 already leads rollups/demo (term 4): nothing to do\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestPromoteResumesItsOwnPendingRequest(t *testing.T) {
	// A second run after a timeout waits for the same request instead of refusing it.
	sc := healthyCluster()
	sc.Annotations = map[string]string{seqv1.AnnotationTransferLeaderTo: "demo-0"}
	c := newFakeClient(t, sc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	operator(ctx, t, c, func(sc *seqv1.SequencerCluster, target string) bool {
		clearAnnotation(t, c, sc)
		updateStatus(t, c, func(sc *seqv1.SequencerCluster) { sc.Status.Leader, sc.Status.Term = target, 9 })
		return true
	})
	out, _, err := run(t, ctx, c, "promote", "demo", "demo-0", "--timeout", "10s")
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	if !strings.HasPrefix(out, "demo-0 now leads rollups/demo (term 9") {
		t.Errorf("output %q", out)
	}
}

func TestPromoteInterrupted(t *testing.T) {
	c := newFakeClient(t, healthyCluster())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err := run(t, ctx, c, "promote", "demo", "demo-0", "--timeout", "10s")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "may still be pending") {
		t.Fatalf("promote error = %v, want the context's error and a note that the request may be pending", err)
	}
}
