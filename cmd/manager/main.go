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

// Command manager runs the sequencer-operator: the SequencerCluster controller and its node watcher.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/controllers"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	var (
		metricsAddr    string
		probeAddr      string
		leaderElect    bool
		watchNS        string
		resync         time.Duration
		nodeAPITimeout time.Duration
		operatorNS     string
		operatorLabels string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect one active manager among replicas, so only one changes Raft membership.")
	flag.StringVar(&watchNS, "watch-namespaces", os.Getenv("WATCH_NAMESPACES"), "Comma-separated namespaces to watch; empty watches all.")
	flag.DurationVar(&resync, "resync-period", 15*time.Second, "How often an idle SequencerCluster is looked at again.")
	flag.DurationVar(&nodeAPITimeout, "node-api-timeout", 5*time.Second, "Timeout of each call to a node's API.")
	flag.StringVar(&operatorNS, "operator-namespace", os.Getenv("POD_NAMESPACE"),
		"The operator's own namespace, whose pods with --operator-pod-labels a cluster's NetworkPolicy admits to the node API; "+
			"defaults to $POD_NAMESPACE, then to the in-cluster service account's namespace.")
	flag.StringVar(&operatorLabels, "operator-pod-labels", defaultOperatorPodLabels,
		"Comma-separated key=value labels every operator pod carries, for the NetworkPolicy of clusters with spec.networkPolicy.enabled.")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	setupLog := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(seqv1.AddToScheme(scheme))

	var namespaces []string
	for _, ns := range strings.Split(watchNS, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			namespaces = append(namespaces, ns)
		}
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "sequencer-operator.seqops.io",
		// A new leader starts at once when the old one stops cleanly.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptions(namespaces),
	})
	if err != nil {
		return fmt.Errorf("cannot create manager: %w", err)
	}

	operatorPods, err := operatorPodsOf(operatorNS, operatorLabels)
	if err != nil {
		return err
	}
	if operatorPods.Namespace == "" {
		setupLog.Info("Operator namespace unknown (no --operator-namespace, $POD_NAMESPACE or service account): " +
			"NetworkPolicies admit pods with the operator's labels from every namespace")
	}

	// Nodes are dialled by the pod IPs the API server reports, not through DNS (see controllers.PodDialer).
	dialer := controllers.NewPodDialer()
	httpClient := &http.Client{Timeout: nodeAPITimeout, Transport: dialer.Transport()}
	r := &controllers.SequencerClusterReconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Scheme:     mgr.GetScheme(),
		Recorder:   mgr.GetEventRecorder("sequencer-operator"),
		HTTPClient: httpClient,
		Dialer:     dialer,
		Resync:     resync,
		Watcher:    controllers.NewNodeWatcher(&http.Client{Transport: dialer.Transport()}, ctrl.Log.WithName("node-watcher")),
		// The nodes' NetworkPolicies must let this process in.
		OperatorPods: operatorPods,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("cannot set up controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("cannot add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("cannot add readiness check: %w", err)
	}
	setupLog.Info("Starting manager", "namespaces", namespaces, "leaderElection", leaderElect)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("manager stopped: %w", err)
	}
	return nil
}

// defaultOperatorPodLabels is the label the chart's and config/'s manager pods both carry.
const defaultOperatorPodLabels = "app.kubernetes.io/name=sequencer-operator"

// serviceAccountNamespaceFile holds the namespace of a pod's service account when running in a cluster.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// operatorPodsOf parses --operator-namespace and --operator-pod-labels.
func operatorPodsOf(namespace, podLabels string) (controllers.OperatorPods, error) {
	set, err := labels.ConvertSelectorToLabelsMap(podLabels)
	if err != nil {
		return controllers.OperatorPods{}, fmt.Errorf("invalid --operator-pod-labels %q: %w", podLabels, err)
	}
	if len(set) == 0 {
		return controllers.OperatorPods{}, fmt.Errorf("--operator-pod-labels must name at least one label")
	}
	if namespace == "" {
		if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil {
			namespace = strings.TrimSpace(string(b))
		}
	}
	return controllers.OperatorPods{Namespace: namespace, Labels: set}, nil
}
