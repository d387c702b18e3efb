// Command node is the Raft-replicated sequencer node: `node run` serves one member of a sequencer
// cluster, `node keygen` writes a signing key.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, fatalLine(err))
		os.Exit(1)
	}
}
