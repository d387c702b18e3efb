// Command node is the Raft-replicated sequencer node: `node run` serves one member of a sequencer
// cluster, `node keygen` writes a signing key.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		// One line, even when several flags are wrong.
		fmt.Fprintln(os.Stderr, "node:", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(1)
	}
}
