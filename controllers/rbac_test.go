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
	"os"
	"path/filepath"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// reviewedPermissions is the operator's whole ClusterRole, one "group/resource verb" per line, each
// reviewed against the calls the reconciler makes. A new permission must be added here on purpose.
var reviewedPermissions = []string{
	// The resource itself: read, and patch annotations (switchover and recovery requests are cleared).
	"seqops.io/sequencerclusters get", "seqops.io/sequencerclusters list", "seqops.io/sequencerclusters watch",
	"seqops.io/sequencerclusters patch",
	"seqops.io/sequencerclusters/status get", "seqops.io/sequencerclusters/status patch",
	// Owner references with blockOwnerDeletion need update on the owner's finalizers.
	"seqops.io/sequencerclusters/finalizers update",
	// Owned objects are server-side applied (a patch that may create); the garbage collector deletes them.
	"apps/statefulsets get", "apps/statefulsets list", "apps/statefulsets watch", "apps/statefulsets create", "apps/statefulsets patch",
	"/services get", "/services list", "/services watch", "/services create", "/services patch",
	"/secrets get", "/secrets list", "/secrets watch", "/secrets create", "/secrets patch",
	"policy/poddisruptionbudgets get", "policy/poddisruptionbudgets list", "policy/poddisruptionbudgets watch",
	"policy/poddisruptionbudgets create", "policy/poddisruptionbudgets patch",
	// The NetworkPolicy of spec.networkPolicy, deleted by the reconciler when the field is turned off.
	"networking.k8s.io/networkpolicies get", "networking.k8s.io/networkpolicies list", "networking.k8s.io/networkpolicies watch",
	"networking.k8s.io/networkpolicies create", "networking.k8s.io/networkpolicies patch", "networking.k8s.io/networkpolicies delete",
	"cert-manager.io/certificates get", "cert-manager.io/certificates list", "cert-manager.io/certificates watch",
	"cert-manager.io/certificates create", "cert-manager.io/certificates patch",
	// ConfigMaps also: the recovery ConfigMap is deleted when a recovery is done.
	"/configmaps get", "/configmaps list", "/configmaps watch", "/configmaps create", "/configmaps patch", "/configmaps delete",
	// Pods: role labels are patched; a pod is deleted to roll it or to restart it for a recovery.
	"/pods get", "/pods list", "/pods watch", "/pods patch", "/pods delete",
	// Volumes of scaled-away members are deleted under the Delete retention policy.
	"/persistentvolumeclaims get", "/persistentvolumeclaims list", "/persistentvolumeclaims watch", "/persistentvolumeclaims delete",
	"/events create", "/events patch", "events.k8s.io/events create", "events.k8s.io/events patch",
}

func TestGeneratedClusterRoleIsTheReviewedList(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &role); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range role.Rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("unexpected rule shape: %+v", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if g == "*" || res == "*" || v == "*" {
						t.Errorf("wildcard in rule %+v", r)
					}
					got = append(got, g+"/"+res+" "+v)
				}
			}
		}
	}
	want := slices.Clone(reviewedPermissions)
	slices.Sort(got)
	slices.Sort(want)
	for _, p := range got {
		if !slices.Contains(want, p) {
			t.Errorf("generated ClusterRole grants %q, which is not in the reviewed list", p)
		}
	}
	for _, p := range want {
		if !slices.Contains(got, p) {
			t.Errorf("reviewed permission %q is missing from the generated ClusterRole (run make manifests)", p)
		}
	}
}
