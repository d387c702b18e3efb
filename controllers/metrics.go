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

package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics of the operator, served on the manager's metrics endpoint next to controller-runtime's own
// (which already counts reconcile errors per controller).
var (
	leaderChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "seqops_cluster_leader_changes_total",
		Help: "Leader changes observed by the node watcher.",
	}, []string{"namespace", "cluster"})

	failoverDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "seqops_cluster_failover_duration_seconds",
		Help:    "Time from the watcher losing the leader (its stream broke or it stepped down) to a new leader reporting itself.",
		Buckets: []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30},
	}, []string{"namespace", "cluster"})

	memberLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "seqops_cluster_member_lag",
		Help: "Committed Raft log entries a member has not applied yet.",
	}, []string{"namespace", "cluster", "member"})

	membershipOperations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "seqops_cluster_membership_operations_total",
		Help: "Membership and rollout steps the operator carried out, by operation.",
	}, []string{"namespace", "cluster", "operation"})

	membershipOperationErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "seqops_cluster_membership_operation_errors_total",
		Help: "Membership and rollout steps that failed, by operation.",
	}, []string{"namespace", "cluster", "operation"})
)

func init() {
	metrics.Registry.MustRegister(leaderChanges, failoverDuration, memberLag, membershipOperations, membershipOperationErrors)
}

// forgetClusterMetrics drops the series of a deleted cluster.
func forgetClusterMetrics(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "cluster": name}
	leaderChanges.DeletePartialMatch(labels)
	failoverDuration.DeletePartialMatch(labels)
	memberLag.DeletePartialMatch(labels)
	membershipOperations.DeletePartialMatch(labels)
	membershipOperationErrors.DeletePartialMatch(labels)
}
