// Command fakenode stands in for bin/node in the local cluster's own tests while the real node is not
// built: it takes the node's flags (`run --id --data-dir --raft-addr --http-addr ...`), serves /healthz
// and /readyz on the HTTP port, accepts TCP on the Raft port, and keeps a boot counter in its data dir
// so a test can see that a recreated pod found its volume again (GET /boots).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("fakenode", flag.ContinueOnError)
	id := fs.String("id", "", "node id")
	dataDir := fs.String("data-dir", "/data", "data dir")
	raftAddr := fs.String("raft-addr", ":7000", "raft listen address")
	httpAddr := fs.String("http-addr", ":8080", "http listen address")
	// The real node's other flags, accepted and ignored.
	for _, name := range []string{"raft-advertise", "chain-id", "signing-key-file", "api-token-file", "bootstrap-id", "join", "initial-cluster-state", "log-level"} {
		fs.String(name, "", "ignored")
	}
	fs.Bool("bootstrap", false, "ignored")
	// Unknown flags of the real node are ignored rather than fatal.
	fs.SetOutput(io.Discard)
	_ = fs.Parse(args)

	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		log.Fatalf("cannot create data dir: %v", err)
	}
	bootsFile := filepath.Join(*dataDir, "boots")
	boots := 0
	if b, err := os.ReadFile(bootsFile); err == nil {
		boots, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	boots++
	if err := os.WriteFile(bootsFile, []byte(strconv.Itoa(boots)), 0o644); err != nil {
		log.Fatalf("cannot write boots: %v", err)
	}
	host, _ := os.Hostname()
	log.Printf("fakenode id=%q host=%q boots=%d env MY_POD_IP=%q", *id, host, boots, os.Getenv("POD_IP"))

	rl, err := net.Listen("tcp", *raftAddr)
	if err != nil {
		log.Fatalf("cannot listen on raft addr: %v", err)
	}
	go func() {
		for {
			c, err := rl.Accept()
			if err != nil {
				return
			}
			_, _ = fmt.Fprintf(c, "fakenode %s\n", *id)
			_ = c.Close()
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/boots", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintf(w, "%d\n", boots) })
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, os.Getenv(r.URL.Query().Get("name")))
	})
	srv := &http.Server{Addr: *httpAddr, Handler: mux}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		log.Printf("fakenode %s: terminating", *id)
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatalf("http: %v", err)
	}
}
