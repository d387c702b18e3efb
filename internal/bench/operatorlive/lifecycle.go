package operatorlive

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/internal/bench/stats"
)

// manifest is the SequencerCluster a user would apply; extraArgs are appended to the node command line.
func manifest(ns, name string, replicas int, extraArgs []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: seqops.io/v1alpha1
kind: SequencerCluster
metadata:
  name: %s
  namespace: %s
spec:
  replicas: %d
  image: %s
  chainID: %s-chain
  blockTime: %s
  raft:
    leaderLeaseTimeout: %s
  storage:
    size: 256Mi
    retentionPolicy: Delete
  signingKey:
    generate: true
`, name, ns, replicas, nodeImage, name, blockTime, leaderLease)
	if len(extraArgs) > 0 {
		b.WriteString("  extraArgs:\n")
		for _, a := range extraArgs {
			fmt.Fprintf(&b, "  - %q\n", a)
		}
	}
	return b.String()
}

// apply runs `kubectl apply` of a manifest and returns when kubectl started.
func (b *bench) apply(ctx context.Context, doc string) (time.Time, error) {
	t := time.Now()
	out, err := b.run(ctx, strings.NewReader(doc), b.o.kubectl(), "--kubeconfig", b.lc.KubeconfigPath(), "apply", "-f", "-")
	if err != nil {
		return t, fmt.Errorf("kubectl apply: %w\n%s", err, out)
	}
	return t, nil
}

func (b *bench) createNamespace(ctx context.Context, ns string) error {
	if err := b.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("cannot create namespace %s: %w", ns, err)
	}
	return nil
}

// deleteNamespace deletes a namespace and waits until its node pods are gone, so they stop using CPU.
func (b *bench) deleteNamespace(ctx context.Context, ns string) error {
	b.progress("deleting namespace %s", ns)
	if err := b.k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("cannot delete namespace %s: %w", ns, err)
	}
	_, _, err := b.objs.waitFor(ctx, 0, 2*time.Minute, "the pods of namespace "+ns+" to be gone", func(v *view) bool {
		for _, p := range v.pods {
			if p.Namespace == ns {
				return false
			}
		}
		return true
	})
	return err
}

// patch applies a JSON merge patch to the SequencerCluster and returns when the request was sent.
func (b *bench) patch(ctx context.Context, ns, name, doc string) (time.Time, error) {
	t := time.Now()
	obj := &seqv1.SequencerCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := b.k8s.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", []byte(doc))); err != nil {
		return t, fmt.Errorf("cannot patch %s/%s with %s: %w", ns, name, doc, err)
	}
	return t, nil
}

// waitHealthy waits from log position from until the cluster is Healthy with replicas ready voters.
func (b *bench) waitHealthy(ctx context.Context, from int, ns, name string, replicas int32, timeout time.Duration) (time.Time, *view, error) {
	return b.objs.waitFor(ctx, from, timeout, fmt.Sprintf("%s/%s Healthy with %d ready voters", ns, name, replicas), func(v *view) bool {
		return healthyAt(v.cluster(ns, name), replicas)
	})
}

func (b *bench) measureCreate(ctx context.Context, ns, name string, res *Result) error {
	b.progress("kubectl apply of a 3-replica SequencerCluster")
	from := b.objs.mark()
	t0, err := b.apply(ctx, manifest(ns, name, 3, nil))
	if err != nil {
		return err
	}
	at, _, err := b.waitHealthy(ctx, from, ns, name, 3, 3*time.Minute)
	if err != nil {
		return err
	}
	res.CreateMs = stats.Ms(at.Sub(t0))
	b.progress("Healthy %s after kubectl apply", at.Sub(t0).Round(time.Millisecond))
	return nil
}

func (b *bench) measureScale(ctx context.Context, ns, name string, res *Result) error {
	for _, step := range []struct {
		to  int32
		out *float64
	}{{5, &res.ScaleUpMs}, {3, &res.ScaleDownMs}} {
		if _, _, err := b.waitHealthy(ctx, b.objs.mark(), ns, name, 3+5-step.to, 2*time.Minute); err != nil {
			return err
		}
		b.progress("scaling to %d", step.to)
		from := b.objs.mark()
		t0, err := b.patch(ctx, ns, name, fmt.Sprintf(`{"spec":{"replicas":%d}}`, step.to))
		if err != nil {
			return err
		}
		at, _, err := b.waitHealthy(ctx, from, ns, name, step.to, 3*time.Minute)
		if err != nil {
			return err
		}
		*step.out = stats.Ms(at.Sub(t0))
		b.progress("Healthy with %d voters %s after the patch", step.to, at.Sub(t0).Round(time.Millisecond))
	}
	return nil
}
