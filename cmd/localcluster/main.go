// Command localcluster runs a local Kubernetes control plane built from source and a process kubelet,
// for tests and demos on a machine without Docker:
//
//	localcluster up     [--data-dir DIR] [--kubeconfig FILE] [--bin-dir DIR] [--image PATTERN=BINARY]... [--wait]
//	localcluster down   [--data-dir DIR] [--purge]
//	localcluster status [--data-dir DIR]
//
// `up` returns once the cluster is healthy and leaves it running (with --wait it stays in the
// foreground and tears the cluster down on Ctrl-C). `down` stops it from any shell. The hidden
// commands `kubelet` and `launch` are how the cluster runs its node and its pods' processes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/seqops/sequencer-operator/internal/localcluster"
	"github.com/seqops/sequencer-operator/internal/localcluster/kubelet"
	"github.com/seqops/sequencer-operator/internal/localcluster/launcher"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
)

const defaultDataDir = "_output/localcluster"

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(os.Args[2:])
	case "down":
		err = down(os.Args[2:])
	case "status":
		err = status(os.Args[2:])
	case "kubelet":
		err = runKubelet(os.Args[2:])
	case "launch":
		err = launch(os.Args[2:])
		// launch only returns on failure; 127 is what a shell says for a program it cannot run.
		fmt.Fprintln(os.Stderr, "localcluster launch:", err)
		os.Exit(127)
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage:
  localcluster up     [--data-dir DIR] [--kubeconfig FILE] [--bin-dir DIR] [--image PATTERN=BINARY]... [--wait]
  localcluster down   [--data-dir DIR]
  localcluster status [--data-dir DIR]
Needs root. Default data dir: %s
`, defaultDataDir)
}

func logger() klog.Logger {
	return textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(0)))
}

type imageFlags []kubelet.ImageMapping

func (f *imageFlags) String() string { return fmt.Sprint(*f) }

func (f *imageFlags) Set(v string) error {
	pattern, bin, ok := strings.Cut(v, "=")
	if !ok || pattern == "" || bin == "" {
		return fmt.Errorf("want PATTERN=BINARY, got %q", v)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	*f = append(*f, kubelet.ImageMapping{Pattern: pattern, Binary: abs})
	return nil
}

func up(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dataDir := fs.String("data-dir", defaultDataDir, "where the cluster keeps its data, logs and state")
	kubeconfig := fs.String("kubeconfig", "", "where to write the admin kubeconfig (default <data-dir>/kubeconfig)")
	binDir := fs.String("bin-dir", "", "directory with etcd and the control-plane binaries (default bin/k8s/"+localcluster.KubernetesVersion+")")
	wait := fs.Bool("wait", false, "stay in the foreground and tear the cluster down on Ctrl-C")
	var images imageFlags
	fs.Var(&images, "image", "map images matching PATTERN to BINARY (repeatable; replaces the defaults)")
	_ = fs.Parse(args)

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find own binary: %w", err)
	}
	cfg := localcluster.Config{
		DataDir: *dataDir, Kubeconfig: *kubeconfig, BinDir: *binDir, LocalclusterBinary: self,
		Detach: !*wait, Log: logger(),
	}
	if len(images) > 0 {
		cfg.Images = images
	}
	if cfg.Kubeconfig != "" {
		if cfg.Kubeconfig, err = filepath.Abs(cfg.Kubeconfig); err != nil {
			return err
		}
	}
	// Ctrl-C while starting cancels Start, which removes whatever it had started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	c, err := localcluster.Start(ctx, cfg)
	if err != nil {
		return err
	}
	st := c.State()
	fmt.Printf("Local cluster up in %s\n  API server: %s\n  node:       %s (pods on %s, bridge %s)\n  kubeconfig: %s\n\n  export KUBECONFIG=%s\n  bin/k8s/%s/kubectl get nodes\n",
		time.Since(began).Round(100*time.Millisecond), st.APIServerURL, st.NodeName, st.PodCIDR, st.Bridge, c.KubeconfigPath(), c.KubeconfigPath(), localcluster.KubernetesVersion)
	if !*wait {
		fmt.Printf("\nStop it with: localcluster down --data-dir %s\n", c.DataDir())
		return nil
	}
	fmt.Println("\nPress Ctrl-C to stop.")
	<-ctx.Done()
	return c.Stop(context.Background())
}

func down(args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	dataDir := fs.String("data-dir", defaultDataDir, "the data dir given to up")
	purge := fs.Bool("purge", false, "also delete the data dir (etcd data, volumes, logs)")
	_ = fs.Parse(args)
	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if _, err := localcluster.ReadState(abs); errors.Is(err, os.ErrNotExist) {
		fmt.Printf("No local cluster recorded in %s\n", abs)
	} else {
		if err := localcluster.Down(context.Background(), abs, logger()); err != nil {
			return err
		}
		fmt.Println("Local cluster down")
	}
	if *purge {
		if err := os.RemoveAll(abs); err != nil {
			return fmt.Errorf("cannot delete data dir: %w", err)
		}
		fmt.Printf("Deleted %s\n", abs)
	}
	return nil
}

func status(args []string) error {
	fs := flag.NewFlagSet("status", flag.ExitOnError)
	dataDir := fs.String("data-dir", defaultDataDir, "the data dir given to up")
	_ = fs.Parse(args)
	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	st, procs, err := localcluster.Status(abs)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Printf("No local cluster recorded in %s\n", abs)
		os.Exit(3)
	}
	if err != nil {
		return err
	}
	fmt.Printf("API server: %s\nkubeconfig: %s\npods:       %s on bridge %s\n", st.APIServerURL, st.Kubeconfig, st.PodCIDR, st.Bridge)
	allUp := true
	for _, p := range procs {
		state := "running"
		if !p.Running {
			state, allUp = "STOPPED", false
		}
		fmt.Printf("  %-24s pid %-7d %-8s log %s\n", p.Name, p.PID, state, p.LogFile)
	}
	if !allUp {
		return errors.New("some components are not running; see their logs, then run down")
	}
	return nil
}

func runKubelet(args []string) error {
	fs := flag.NewFlagSet("kubelet", flag.ExitOnError)
	config := fs.String("config", "", "kubelet config written by localcluster up")
	_ = fs.Parse(args)
	cfg, err := kubelet.LoadConfig(*config)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = klog.NewContext(ctx, logger())
	return kubelet.Run(ctx, cfg)
}

func launch(args []string) error {
	fs := flag.NewFlagSet("launch", flag.ContinueOnError)
	spec := fs.String("spec", "", "launch spec written by the kubelet")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return launcher.Run(*spec)
}
