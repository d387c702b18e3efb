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

package main

import (
	"maps"
	"testing"
)

func TestOperatorPodsOf(t *testing.T) {
	cases := []struct {
		name, namespace, labels string
		want                    map[string]string
		wantErr                 bool
	}{
		{"the default", "seqops-system", defaultOperatorPodLabels, map[string]string{"app.kubernetes.io/name": "sequencer-operator"}, false},
		{"the chart's selector labels", "ops", "app.kubernetes.io/name=sequencer-operator,app.kubernetes.io/instance=seqops,app.kubernetes.io/component=manager",
			map[string]string{"app.kubernetes.io/name": "sequencer-operator", "app.kubernetes.io/instance": "seqops", "app.kubernetes.io/component": "manager"}, false},
		{"no labels would admit every pod", "ops", "", nil, true},
		{"not key=value", "ops", "app.kubernetes.io/name", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := operatorPodsOf(tc.namespace, tc.labels)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Namespace != tc.namespace || !maps.Equal(got.Labels, tc.want) {
				t.Fatalf("got %+v, want namespace %s labels %v", got, tc.namespace, tc.want)
			}
		})
	}
}
