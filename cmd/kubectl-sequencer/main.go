// Command kubectl-sequencer is the kubectl plugin for SequencerClusters: `kubectl sequencer status|members|promote`.
// kubectl finds it as kubectl-sequencer on the PATH.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/seqops/sequencer-operator/internal/plugin"
)

func main() {
	// Ctrl-C stops a promote wait cleanly; the error then says the request may still be pending.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := plugin.NewRootCommand(plugin.Config{
		Streams: genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr},
	})
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		stop()
		os.Exit(1)
	}
}
