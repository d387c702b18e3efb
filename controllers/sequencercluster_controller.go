/*
Copyright 2026 The sequencer-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package controllers holds the SequencerCluster reconciler and the node watcher that feeds it.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

// NodeURLFunc returns the node API base URL of a pod of cluster c. Tests point it at fake node servers.
type NodeURLFunc func(c *seqv1.SequencerCluster, pod string) string

// FailpointFunc is called after each membership or rollout step with the step's name ("after-RemoveMember",
// ...). An error makes the pass stop right there, as if the operator had crashed between two steps: nothing
// else of the pass happens, not even the status patch. Production leaves it nil.
type FailpointFunc func(name string) error

// SequencerClusterReconciler turns a SequencerCluster into a running, self-managing Raft cluster of sequencer
// nodes. One pass: fetch, ensure owned resources, observe the nodes, at most one membership or rollout step,
// compute the status with pure functions, patch it once.
type SequencerClusterReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads the StatefulSet uncached, so the planner never acts on a stale replica count.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	Watcher   *NodeWatcher
	// NodeURL resolves a pod's node API; DefaultNodeURL when nil.
	NodeURL NodeURLFunc
	// HTTPClient carries node API calls; a client with a 5s timeout when nil.
	HTTPClient *http.Client
	// Dialer, when set, learns the pods' IPs each pass; HTTPClient, the watcher's client and the TLS
	// clients should dial through it (cmd/manager wires them) so a new pod is reached without waiting for DNS.
	Dialer *PodDialer
	// Clock is the time source of status timestamps; time.Now when nil.
	Clock func() time.Time
	// Resync is how often an idle cluster is looked at again; 15s when zero.
	Resync time.Duration
	// Failpoint injects crashes between steps in tests.
	Failpoint FailpointFunc
	// OperatorPods are the operator's own pods, admitted to the node API by a cluster's NetworkPolicy.
	OperatorPods OperatorPods
	// nodeClients caches the TLS clients of clusters with spec.tls.
	nodeClients nodeHTTPClients
	// failures remembers which members were Failed, so each failure gets one event.
	failures failureMemory
}

// scope is the state of one pass.
type scope struct {
	cluster      *seqv1.SequencerCluster
	sts          *appsv1.StatefulSet
	pods         map[string]*corev1.Pod
	token        string
	bootstrapped bool
	input        planInput
	step         step
	rejection    string
	// rejectionReason is the condition reason of rejection.
	rejectionReason string
	// recoveryFor is the pod the recovery ConfigMap holds a file for.
	recoveryFor string
	// nodeHTTP reaches a TLS-enabled cluster's node API (trusting its CA); nil without TLS.
	nodeHTTP *http.Client
}

// errFailpoint marks an injected crash.
var errFailpoint = errors.New("failpoint")

// Least privilege: the verbs below are the ones the reconciler calls (server-side apply is a patch that
// may create; owned objects are deleted by the garbage collector, not by us). rbac_test.go pins the list.
// +kubebuilder:rbac:groups=seqops.io,resources=sequencerclusters,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=seqops.io,resources=sequencerclusters/status,verbs=get;patch
// +kubebuilder:rbac:groups=seqops.io,resources=sequencerclusters/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=core,resources=services;secrets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=core,resources=configmaps,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=core,resources=pods,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=core,resources=persistentvolumeclaims,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=core,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;patch

// Reconcile runs one pass for one SequencerCluster.
func (r *SequencerClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	c := &seqv1.SequencerCluster{}
	if err := r.Client.Get(ctx, req.NamespacedName, c); err != nil {
		if apierrors.IsNotFound(err) {
			// Owned objects go with the garbage collector; only the streams and series are ours to drop.
			r.Watcher.Forget(req.NamespacedName)
			if r.Dialer != nil {
				r.Dialer.Forget(req.NamespacedName)
			}
			r.failures.forget(req.NamespacedName)
			forgetClusterMetrics(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("cannot read SequencerCluster: %w", err)
	}
	if !c.DeletionTimestamp.IsZero() {
		r.Watcher.Forget(req.NamespacedName)
		if r.Dialer != nil {
			r.Dialer.Forget(req.NamespacedName)
		}
		return ctrl.Result{}, nil
	}

	s := &scope{cluster: c}
	for _, phase := range []func(context.Context, *scope) error{
		r.readBootstrapState,
		r.readStatefulSet,
		r.reconcileResources, // reads the TLS Secret too: the StatefulSet waits for it
		r.observe,
		r.reconcileRoleLabels,
	} {
		if err := phase(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	}

	s.step = planStep(s.input)
	if s.step.Kind != stepWait {
		logger.Info("Taking step", "step", s.step.Kind, "member", s.step.Member, "target", s.step.Target, "reason", s.step.Message)
	} else if s.step.Message != "" {
		logger.V(1).Info("Waiting", "reason", s.step.Message)
	}
	stepErr := r.execute(ctx, s)
	if errors.Is(stepErr, errFailpoint) {
		return ctrl.Result{}, stepErr
	}

	status := computeStatus(statusInput{
		Generation:      c.Generation,
		Previous:        c.Status,
		Plan:            s.input,
		Step:            s.step,
		Rejection:       s.rejection,
		RejectionReason: s.rejectionReason,
		Now:             r.now(),
	})
	r.recordTransitions(c, status)
	r.recordMemberFailures(c, status, s.input)
	r.recordMemberMetrics(c, status)
	if err := r.patchStatus(ctx, c, status); err != nil {
		return ctrl.Result{}, err
	}
	if stepErr != nil {
		return ctrl.Result{}, stepErr
	}
	switch {
	case s.step.Kind != stepWait:
		return ctrl.Result{RequeueAfter: 200 * time.Millisecond}, nil
	case s.step.Activity != activityNone:
		return ctrl.Result{RequeueAfter: time.Second}, nil
	default:
		return ctrl.Result{RequeueAfter: r.resync()}, nil
	}
}

func (r *SequencerClusterReconciler) now() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

func (r *SequencerClusterReconciler) resync() time.Duration {
	if r.Resync > 0 {
		return r.Resync
	}
	return 15 * time.Second
}

func (r *SequencerClusterReconciler) event(c *seqv1.SequencerCluster, eventType, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(c, nil, eventType, reason, action, note, args...)
	}
}

// readBootstrapState reads whether the Raft cluster was ever formed: from the status, or from the ConfigMap
// that tells the pods, whichever says so. Either is enough to never bootstrap again.
func (r *SequencerClusterReconciler) readBootstrapState(ctx context.Context, s *scope) error {
	s.bootstrapped = s.cluster.Status.Bootstrapped
	cm := &corev1.ConfigMap{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.cluster.Namespace, Name: configMapName(s.cluster)}, cm)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("cannot read ConfigMap %s: %w", configMapName(s.cluster), err)
	}
	s.bootstrapped = s.bootstrapped || cm.Data[configKeyInitialState] == initialStateExisting
	return r.readRecovery(ctx, s)
}

// readRecovery finds a quorum-loss recovery in progress: the recovery ConfigMap and the pod it is for.
func (r *SequencerClusterReconciler) readRecovery(ctx context.Context, s *scope) error {
	cm := &corev1.ConfigMap{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.cluster.Namespace, Name: recoveryConfigMapName(s.cluster)}, cm)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("cannot read ConfigMap %s: %w", recoveryConfigMapName(s.cluster), err)
	}
	for key := range cm.Data {
		if pod, ok := strings.CutSuffix(key, ".json"); ok {
			s.recoveryFor = pod
		}
	}
	if s.recoveryFor == "" {
		s.recoveryFor = recoveryConfigMapName(s.cluster) // an unexpected ConfigMap still gets cleaned up
	}
	return nil
}

// reconcileRoleLabels labels the leader's pod seqops.io/role=leader and every other pod follower, so the
// leader Service always points at the pod that produces blocks.
func (r *SequencerClusterReconciler) reconcileRoleLabels(ctx context.Context, s *scope) error {
	for name, pod := range s.pods {
		want := seqv1.RoleFollower
		if name == s.input.Leader {
			want = seqv1.RoleLeader
		}
		if pod.Labels[seqv1.LabelRole] == want || !pod.DeletionTimestamp.IsZero() {
			continue
		}
		patch := client.MergeFrom(pod.DeepCopy())
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels[seqv1.LabelRole] = want
		if err := r.Client.Patch(ctx, pod, patch); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("cannot label pod %s %s: %w", name, want, err)
		}
		log.FromContext(ctx).V(1).Info("Labelled pod", "pod", klog.KObj(pod), "role", want)
	}
	return nil
}

// recordTransitions emits the events of status changes: leader changes, quorum loss and recovery, and a
// warning for an even replica count.
func (r *SequencerClusterReconciler) recordTransitions(c *seqv1.SequencerCluster, st seqv1.SequencerClusterStatus) {
	prev := c.Status
	if st.Leader != "" && st.Leader != prev.Leader {
		if prev.Leader == "" {
			r.event(c, corev1.EventTypeNormal, "LeaderElected", "ObserveLeader", "%s leads in term %d", st.Leader, st.Term)
		} else {
			r.event(c, corev1.EventTypeNormal, "LeaderChanged", "ObserveLeader", "Leadership moved from %s to %s in term %d", prev.Leader, st.Leader, st.Term)
		}
	}
	if st.Phase == seqv1.PhaseNoQuorum && prev.Phase != seqv1.PhaseNoQuorum {
		r.event(c, corev1.EventTypeWarning, "QuorumLost", "ObserveLeader",
			"No node reports itself leader; blocks stop and membership changes are frozen until quorum returns")
	}
	if prev.Phase == seqv1.PhaseNoQuorum && st.Phase != seqv1.PhaseNoQuorum && st.Leader != "" {
		r.event(c, corev1.EventTypeNormal, "QuorumRestored", "ObserveLeader", "%s leads again", st.Leader)
	}
	if prev.ObservedGeneration != c.Generation && c.DesiredReplicas()%2 == 0 {
		r.event(c, corev1.EventTypeWarning, "EvenReplicas", "ValidateSpec",
			"spec.replicas is %d: an even count tolerates no more failures than %d; prefer an odd count",
			c.DesiredReplicas(), c.DesiredReplicas()-1)
	}
}

func (r *SequencerClusterReconciler) recordMemberMetrics(c *seqv1.SequencerCluster, st seqv1.SequencerClusterStatus) {
	// Drop the series of members that are gone, then set the current ones.
	memberLag.DeletePartialMatch(map[string]string{"namespace": c.Namespace, "cluster": c.Name})
	for _, m := range st.Members {
		memberLag.WithLabelValues(c.Namespace, c.Name, m.Name).Set(float64(m.Lag))
	}
}

// CacheOptions restricts the manager's cache of Pods, Secrets, ConfigMaps and PVCs to the operator's own
// (labelled seqops.io/cluster), so a large cluster's Secrets are never held in memory.
func CacheOptions(namespaces []string) cache.Options {
	req, err := labels.NewRequirement(seqv1.LabelCluster, selection.Exists, nil)
	if err != nil {
		panic(fmt.Sprintf("cannot build label selector: %v", err))
	}
	own := labels.NewSelector().Add(*req)
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:                   {Label: own},
		&corev1.Secret{}:                {Label: own},
		&corev1.ConfigMap{}:             {Label: own},
		&corev1.PersistentVolumeClaim{}: {Label: own},
	}}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// SetupWithManager wires the reconciler: its own objects, the pods (by label), and the node watcher.
func (r *SequencerClusterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Watcher == nil {
		r.Watcher = NewNodeWatcher(r.HTTPClient, mgr.GetLogger().WithName("node-watcher"))
	}
	if err := mgr.Add(r.Watcher); err != nil {
		return fmt.Errorf("cannot add node watcher: %w", err)
	}
	podToCluster := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		name := o.GetLabels()[seqv1.LabelCluster]
		if name == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		// Status writes do not bump the generation; annotations carry switchover requests.
		For(&seqv1.SequencerCluster{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.Secret{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Watches(&corev1.Pod{}, podToCluster).
		WatchesRawSource(r.Watcher.Source()).
		Named("sequencercluster").
		Complete(r)
}

// nodeClient is a client of one pod's node API, authenticated for membership calls.
func (r *SequencerClusterReconciler) nodeClient(s *scope, pod string) *nodeapi.Client {
	resolve := r.NodeURL
	if resolve == nil {
		resolve = DefaultNodeURL
	}
	hc := r.HTTPClient
	if s.nodeHTTP != nil {
		hc = s.nodeHTTP
	}
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	return nodeapi.NewClient(resolve(s.cluster, pod), nodeapi.WithToken(s.token), nodeapi.WithHTTPClient(hc))
}
