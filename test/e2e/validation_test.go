//go:build e2e

package e2e

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// (i) invalid SequencerClusters are refused by `kubectl apply` with messages that name the field.
var _ = Describe("Validation", Label(LabelValidation), func() {
	// manifest is a valid one-node cluster named name with extra spec lines (indented two spaces under spec).
	manifest := func(name, specLines string) string {
		return fmt.Sprintf(`apiVersion: seqops.io/v1alpha1
kind: SequencerCluster
metadata:
  name: %s
spec:
  replicas: 1
  image: %s
  chainID: %s-chain
  storage:
    size: 64Mi
%s`, name, nodeImage, name, specLines)
	}

	It("refuses invalid SequencerClusters at kubectl apply with messages that name the field", func(ctx SpecContext) {
		ns := createNamespace(ctx, "validation")
		cases := []struct {
			what, manifest string
			want           []string
		}{
			{"too many replicas", manifest("too-many", "  replicas: 10\n"),
				[]string{"spec.replicas", "less than or equal to 9"}},
			{"zero replicas", manifest("zero", "  replicas: 0\n"),
				[]string{"spec.replicas", "greater than or equal to 1"}},
			{"a block time below 10ms", manifest("fast-blocks", "  blockTime: 5ms\n"),
				[]string{"spec.blockTime", "blockTime must be between 10ms and 1h"}},
			{"a block time that is not a duration", manifest("bad-duration", "  blockTime: soon\n"),
				[]string{"spec.blockTime", "should match"}},
			{"an election timeout below the heartbeat", manifest("raft", "  raft:\n    heartbeatTimeout: 200ms\n    electionTimeout: 100ms\n"),
				[]string{"spec.raft.electionTimeout", "raft.electionTimeout must be greater than or equal to raft.heartbeatTimeout"}},
			{"a managed flag in extraArgs", manifest("args", "  extraArgs: [\"--id=other\"]\n"),
				[]string{"spec.extraArgs", "extraArgs must not set a flag the operator manages"}},
			{"both signing key sources", manifest("keys", "  signingKey:\n    generate: true\n    secretRef: {name: k}\n"),
				[]string{"spec.signingKey", "signingKey must set exactly one of secretRef or generate: true"}},
			{"an unknown retention policy", manifest("retention", "  storage:\n    size: 64Mi\n    retentionPolicy: Sometimes\n"),
				[]string{"spec.storage.retentionPolicy", "Unsupported value", "Retain", "Delete"}},
			{"no chainID", strings.Replace(manifest("no-chain", ""), "  chainID: no-chain-chain\n", "", 1),
				[]string{"spec.chainID", "Required value"}},
			{"a name too long for the pods' DNS names", manifest(strings.Repeat("n", 53), ""),
				[]string{"metadata.name must be at most 52 characters"}},
		}
		for _, tc := range cases {
			By("applying a SequencerCluster with " + tc.what)
			_, stderr, err := kubectlApply(ctx, ns, tc.manifest)
			Expect(err).To(HaveOccurred(), "kubectl apply of a cluster with %s should fail", tc.what)
			fmt.Fprintf(GinkgoWriter, "%s → %s", tc.what, stderr)
			for _, w := range tc.want {
				Expect(stderr).To(ContainSubstring(w), "kubectl's message for %s", tc.what)
			}
		}

		By("changing the immutable chainID and storage size of an existing cluster")
		Expect(kubectlApplyOK(ctx, ns, manifest("immutable", ""))).To(Succeed())
		_, stderr, err := kubectlApply(ctx, ns, strings.Replace(manifest("immutable", ""), "immutable-chain", "other-chain", 1))
		Expect(err).To(HaveOccurred(), "a chainID change should be refused")
		Expect(stderr).To(ContainSubstring("spec.chainID"))
		Expect(stderr).To(ContainSubstring("chainID is immutable"))
		_, stderr, err = kubectlApply(ctx, ns, strings.Replace(manifest("immutable", ""), "size: 64Mi", "size: 128Mi", 1))
		Expect(err).To(HaveOccurred(), "a storage size change should be refused")
		Expect(stderr).To(ContainSubstring("spec.storage.size"))
		Expect(stderr).To(ContainSubstring("storage.size is immutable"))
	})
})

// kubectlApplyOK applies a manifest that must be accepted.
func kubectlApplyOK(ctx SpecContext, ns, m string) error {
	_, stderr, err := kubectlApply(ctx, ns, m)
	if err != nil {
		return fmt.Errorf("kubectl apply: %w: %s", err, stderr)
	}
	return nil
}
