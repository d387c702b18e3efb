//go:build e2e

// Package e2e is the end-to-end suite of sequencer-operator: a real control plane built from source
// (internal/localcluster), the operator installed from charts/sequencer-operator with Helm, and
// SequencerClusters of real bin/node processes. Run it with `make test-e2e` (root, bin/k8s needed);
// pick specs with -ginkgo.label-filter, e.g. `-ginkgo.label-filter=failover`.
package e2e

// Labels of the specs, one per behaviour the issue lists, so a run can be narrowed
// (-ginkgo.label-filter='failover || switchover'), as CloudNativePG's tests/labels.go does.
const (
	LabelBasic           = "basic"            // (a) create, Healthy, printer column, leader Service
	LabelFailover        = "failover"         // (b) SIGKILL of the leader
	LabelSwitchover      = "switchover"       // (c) kubectl delete pod of the leader, (f) kubectl sequencer promote
	LabelScale           = "scale"            // (d) 3 → 5 → 3
	LabelRollingUpdate   = "rolling-update"   // (e) template change, leader last
	LabelPlugin          = "plugin"           // (f) kubectl sequencer promote
	LabelPartition       = "partition"        // (g) the leader cut off the network
	LabelDiskLoss        = "disk-loss"        // (h) a PVC deleted
	LabelValidation      = "validation"       // (i) invalid objects refused
	LabelDeletion        = "deletion"         // (j) garbage collection and PVC retention
	LabelOperatorRestart = "operator-restart" // issue 7: the operator pod restarted mid-scale and mid-rollout
	LabelQuorumLoss      = "quorum-loss"      // issue 7: two voters' volumes lost, recovery by annotation
	LabelDiskFault       = "disk-fault"       // issue 7: a follower's raft.db damaged, shown Failed, replaced by the runbook
	LabelTLS             = "tls"              // issue 7: mutual TLS between the nodes and to their API
	LabelDisruptive      = "disruptive"       // kills, cuts or deletes something behind the operator's back
)
