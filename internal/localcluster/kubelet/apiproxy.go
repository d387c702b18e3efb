package kubelet

import (
	"context"
	"fmt"
	"io"
	"net"
)

// serveAPIProxy forwards TCP from the bridge gateway to the API server on loopback: pods live in their
// own network namespaces and cannot reach the host's 127.0.0.1. TLS passes through untouched; the API
// server's certificate names the gateway address.
func serveAPIProxy(ctx context.Context, listenAddr, target string) error {
	l, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return fmt.Errorf("cannot listen for the in-cluster API forwarder on %s: %w", listenAddr, err)
	}
	go func() {
		<-ctx.Done()
		_ = l.Close()
	}()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go forward(ctx, conn, target)
		}
	}()
	return nil
}

func forward(ctx context.Context, in net.Conn, target string) {
	defer in.Close()
	var d net.Dialer
	out, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
