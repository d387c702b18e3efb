// Command seqbench runs the node benchmarks of issue 6 (failover, switchover, commit path, encoding),
// prints one table of figures against the targets of DESIGN.md §7 and writes docs/benchmarks.md with
// plots and a JSON file of raw results. `make bench` and `make bench-quick` run it.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "seqbench:", err)
		os.Exit(1)
	}
}
