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
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// patchStatus writes the pass's status once: skipped when nothing changed, merged with an optimistic lock and
// retried on conflict against the latest object.
func (r *SequencerClusterReconciler) patchStatus(ctx context.Context, c *seqv1.SequencerCluster, status seqv1.SequencerClusterStatus) error {
	latest := c.DeepCopy()
	first := true
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(c), latest); err != nil {
				return err
			}
		}
		first = false
		if equality.Semantic.DeepEqual(latest.Status, status) {
			return nil
		}
		patch := client.MergeFromWithOptions(latest.DeepCopy(), client.MergeFromWithOptimisticLock{})
		latest.Status = status
		return r.Client.Status().Patch(ctx, latest, patch)
	})
	if err != nil {
		return fmt.Errorf("cannot patch status: %w", err)
	}
	return nil
}
