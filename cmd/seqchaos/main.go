// Command seqchaos runs the fault campaign: real node processes in their own network namespaces under
// transaction load, a seeded schedule of faults, and a checker over every chain and the load log. It
// needs root (network namespaces). The seed is printed first and last, so a failure can be replayed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/internal/chaos/campaign"
	"github.com/seqops/sequencer-operator/internal/chaos/netlab"
)

func main() {
	os.Exit(run())
}

func run() int {
	seed := flag.Int64("seed", time.Now().UnixNano()%1_000_000_000, "seed of the fault schedule (printed; pass it again to replay)")
	faults := flag.Int("faults", 100, "number of faults to inject")
	nodes := flag.Int("nodes", 3, "cluster size: 3 or 5")
	bin := flag.String("bin", "bin/node", "the node binary")
	dir := flag.String("dir", "", "working directory for data dirs, logs and the load log (default: a new temp dir)")
	out := flag.String("out", "", "write the markdown report here")
	jsonOut := flag.String("json", "", "write the JSON report here")
	bound := flag.Duration("resume-bound", 2*time.Second, "longest allowed time from a fault that left a quorum to the next block")
	flag.Parse()

	if *nodes != 3 && *nodes != 5 {
		fmt.Fprintln(os.Stderr, "seqchaos: --nodes must be 3 or 5")
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "seqchaos: needs root to create network namespaces")
		return 2
	}
	if _, err := os.Stat(*bin); err != nil {
		fmt.Fprintf(os.Stderr, "seqchaos: node binary: %v (build it with `go build -o bin/node ./cmd/node`)\n", err)
		return 2
	}
	absBin, _ := filepath.Abs(*bin)
	if *dir == "" {
		d, err := os.MkdirTemp("", "seqchaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "seqchaos:", err)
			return 1
		}
		*dir = d
	} else if err := os.RemoveAll(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "seqchaos: cannot clear --dir:", err)
		return 1
	}
	if left, err := netlab.Leftovers(); err == nil && len(left) > 0 {
		fmt.Fprintf(os.Stderr, "seqchaos: note: network objects of another (or a crashed) campaign exist: %v\n", left)
	}

	fmt.Printf("seqchaos: seed %d, %d faults, %d nodes, work dir %s\n", *seed, *faults, *nodes, *dir)
	// SIGINT/SIGTERM end the campaign early; deferred cleanup removes the processes and the lab.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := campaign.Run(ctx, campaign.Config{
		Seed: *seed, Faults: *faults, Nodes: *nodes, Bin: absBin, Dir: *dir, ResumeBound: *bound, Log: os.Stdout,
	})
	if rep != nil {
		if *out != "" {
			if werr := writeFile(*out, rep.WriteMarkdown); werr != nil {
				fmt.Fprintln(os.Stderr, "seqchaos:", werr)
			}
		}
		if *jsonOut != "" {
			if werr := writeFile(*jsonOut, rep.WriteJSON); werr != nil {
				fmt.Fprintln(os.Stderr, "seqchaos:", werr)
			}
		}
		fmt.Print(rep.Summary())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "seqchaos: campaign did not complete (seed %d): %v\n", *seed, err)
		return 1
	}
	if !rep.Passed() {
		return 1
	}
	return 0
}

func writeFile(path string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return f.Close()
}
