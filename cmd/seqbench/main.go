// Command seqbench runs the benchmarks of issue 6 — the node's (failover, switchover, commit path,
// encoding) and the operator's on the local control plane — prints one table of figures against the
// targets of DESIGN.md §7 and writes docs/benchmarks.md with plots and a JSON file of raw results.
// `make bench` and `make bench-quick` run it.
package main

import (
	"fmt"
	"os"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

func main() {
	// The operator benchmarks use controller-runtime clients; their logs would only interleave with the
	// progress lines, and every failure they meet is returned as an error.
	ctrllog.SetLogger(logr.Discard())
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "seqbench:", err)
		os.Exit(1)
	}
}
