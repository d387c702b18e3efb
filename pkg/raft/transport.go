package raft

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	hraft "github.com/hashicorp/raft"
)

// dnsAddr is an advertised address that may be a DNS name: hashicorp/raft's own TCP transport insists
// on an IP, but our peers reach each other through stable names that survive pod IP changes.
type dnsAddr string

func (a dnsAddr) Network() string { return "tcp" }
func (a dnsAddr) String() string  { return string(a) }

// streamLayer is a hraft.StreamLayer over TCP, optionally wrapped in mutual TLS.
type streamLayer struct {
	net.Listener
	advertise dnsAddr
	client    *tls.Config
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: timeout}
	if s.client == nil {
		return dialer.Dial("tcp", string(address))
	}
	return tls.DialWithDialer(dialer, "tcp", string(address), s.client)
}

func newNetworkTransport(cfg Config, logger hclogger) (*hraft.NetworkTransport, error) {
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for raft on %s: %w", cfg.BindAddr, err)
	}
	stream := &streamLayer{Listener: ln, advertise: dnsAddr(cfg.Advertise)}
	if cfg.TLS != nil {
		if cfg.TLS.Server == nil || cfg.TLS.Client == nil {
			_ = ln.Close()
			return nil, fmt.Errorf("raft TLS needs both a server and a client configuration")
		}
		server := cfg.TLS.Server.Clone()
		server.ClientAuth = tls.RequireAndVerifyClientCert
		stream.Listener = tls.NewListener(ln, server)
		stream.client = cfg.TLS.Client
	}
	return hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  logger,
		// One RPC in flight turns hashicorp/raft's pipelined replication off. Its pipeline (v1.8.0)
		// can deadlock: when a follower answers Success=false or a higher term, the decoder exits
		// while the sender blocks on the unbuffered in-progress channel, so that follower's
		// replication stops for good (heartbeats go on, so it never calls an election) and
		// Raft.Shutdown waits forever. The fault campaign hit it (a SIGTERM that never finished).
		MaxRPCsInFlight: 1,
	}), nil
}
