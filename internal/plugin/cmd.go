// Package plugin is the kubectl sequencer plugin: it reads SequencerCluster objects and requests
// switchovers through the seqops.io/transfer-leader-to annotation. It never talks to the nodes: the
// operator's status is the single view of a cluster, and the operator performs every change.
package plugin

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// ClientFunc makes a client from the REST config the kubeconfig flags resolve to.
type ClientFunc func(*rest.Config) (client.Client, error)

// Config wires the commands to their surroundings; tests replace the client and the clock.
type Config struct {
	// Streams are the commands' input and outputs.
	Streams genericiooptions.IOStreams
	// NewClient makes the client; nil means NewClient.
	NewClient ClientFunc
	// Now is the clock for LAST-SEEN; nil means time.Now.
	Now func() time.Time
	// PollInterval is how often promote reads the cluster while waiting; 0 means 500ms.
	PollInterval time.Duration
}

// NewClient is a controller-runtime client that knows the SequencerCluster types.
func NewClient(cfg *rest.Config) (client.Client, error) {
	scheme := runtime.NewScheme()
	if err := seqv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("cannot register the SequencerCluster types: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("cannot create Kubernetes client: %w", err)
	}
	return c, nil
}

// env is what a subcommand needs at run time: a client and the namespace from the kubeconfig flags.
type env struct {
	cfg   Config
	flags *genericclioptions.ConfigFlags
}

func (e *env) client() (client.Client, string, error) {
	ns, _, err := e.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("cannot determine the namespace: %w", err)
	}
	rc, err := e.flags.ToRESTConfig()
	if err != nil {
		return nil, "", fmt.Errorf("cannot load kubeconfig: %w", err)
	}
	c, err := e.cfg.NewClient(rc)
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

// NewRootCommand is `kubectl sequencer` with its subcommands and kubectl's kubeconfig flags
// (--kubeconfig, --context, --namespace/-n, --server, ...).
func NewRootCommand(cfg Config) *cobra.Command {
	if cfg.NewClient == nil {
		cfg.NewClient = NewClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	e := &env{cfg: cfg, flags: genericclioptions.NewConfigFlags(true)}
	root := &cobra.Command{
		Use:   "kubectl-sequencer",
		Short: "Inspect SequencerClusters and switch their leader",
		Long: "kubectl sequencer shows the Raft members of a SequencerCluster as the operator sees them, and asks\n" +
			"the operator for a switchover (a planned leadership transfer).",
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl sequencer"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(cfg.Streams.In)
	root.SetOut(cfg.Streams.Out)
	root.SetErr(cfg.Streams.ErrOut)
	e.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(newStatusCommand(e), newMembersCommand(e), newPromoteCommand(e))
	return root
}

func newStatusCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "status CLUSTER",
		Short: "Show a cluster's phase, leader, term, height, failure tolerance and members",
		Example: "  kubectl sequencer status demo\n" +
			"  kubectl sequencer status demo -n rollups --context prod",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := e.client()
			if err != nil {
				return err
			}
			sc, err := getCluster(cmd.Context(), c, client.ObjectKey{Namespace: ns, Name: args[0]})
			if err != nil {
				return err
			}
			return PrintStatus(cmd.OutOrStdout(), sc, e.cfg.Now())
		},
	}
}

func newMembersCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "members CLUSTER",
		Short: "List a cluster's Raft members: ID, address and suffrage",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := e.client()
			if err != nil {
				return err
			}
			sc, err := getCluster(cmd.Context(), c, client.ObjectKey{Namespace: ns, Name: args[0]})
			if err != nil {
				return err
			}
			return PrintRaftMembers(cmd.OutOrStdout(), sc)
		},
	}
}

func newPromoteCommand(e *env) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "promote CLUSTER POD",
		Short: "Hand leadership to POD (a switchover) and wait until it leads",
		Long: "promote sets the annotation seqops.io/transfer-leader-to=POD on the SequencerCluster; the operator\n" +
			"transfers Raft leadership to that pod and removes the annotation. The command waits until the\n" +
			"pod leads, and fails when the operator refuses (the pod is not a caught-up voter, for example)\n" +
			"or when --timeout passes.",
		Example: "  kubectl sequencer promote demo demo-2\n" +
			"  kubectl sequencer promote demo demo-0 --timeout 2m",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := e.client()
			if err != nil {
				return err
			}
			key := client.ObjectKey{Namespace: ns, Name: args[0]}
			res, err := Promote(cmd.Context(), c, key, args[1], PromoteOptions{
				Timeout:      timeout,
				PollInterval: e.cfg.PollInterval,
				Progress:     cmd.ErrOrStderr(),
			})
			if err != nil {
				var rej *RejectedError
				if errors.As(err, &rej) {
					return fmt.Errorf("switchover of %s failed: %w", key, err)
				}
				return err
			}
			out := cmd.OutOrStdout()
			if res.AlreadyLeader {
				fmt.Fprintf(out, "%s already leads %s (term %d): nothing to do\n", res.Leader, key, res.Term)
				return nil
			}
			fmt.Fprintf(out, "%s now leads %s (term %d, previously %s), after %s\n",
				res.Leader, key, res.Term, orNone(res.PreviousLeader), res.Elapsed.Round(100*time.Millisecond))
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "How long to wait for the pod to lead")
	return cmd
}
