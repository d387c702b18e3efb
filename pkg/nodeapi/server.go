package nodeapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Backend is what the server needs from a node. Errors wrap the sentinels of errors.go.
type Backend interface {
	// Status is the current status document.
	Status() Status
	// Changes returns a channel closed at the next change of the status.
	Changes() <-chan struct{}
	// Members is the current Raft configuration.
	Members() (Configuration, error)
	// AddMember adds a member; leader only.
	AddMember(req AddMemberRequest) (Configuration, error)
	// RemoveMember removes a member and returns once the removal is committed; leader only.
	RemoveMember(id string, configIndex uint64) (Configuration, error)
	// TransferLeadership hands leadership to id or the most caught-up voter; leader only.
	TransferLeadership(id string) (TransferResponse, error)
	// SubmitTx takes a transaction into the mempool and, with wait, waits for its commit; leader only.
	SubmitTx(ctx context.Context, tx []byte, wait bool) (TxResponse, error)
	// Tx reports a transaction's inclusion.
	Tx(hash []byte) (TxResponse, error)
	// Block returns a committed block (height 0: the head) as JSON and as protobuf bytes.
	Block(height uint64) (*Block, []byte, error)
	// LeaderAPI is the leader's node API base URL, empty when unknown.
	LeaderAPI() string
	// Healthy is nil while the process can do its job (liveness).
	Healthy() error
	// Ready is nil while the node is a caught-up member with a known leader (readiness).
	Ready() error
}

// ServerConfig configures the API server.
type ServerConfig struct {
	// Token is the bearer token membership and transfer calls must carry. Empty disables those calls.
	Token string
	// Metrics serves GET /metrics; nil answers 404.
	Metrics http.Handler
	// ForwardClient is used to forward leader-only calls; nil uses a client with a 30s timeout.
	ForwardClient *http.Client
	// MaxTxBytes bounds the body of POST /tx (default 64 KiB).
	MaxTxBytes int64
	// TxWait bounds how long POST /tx waits for commit (default 10s).
	TxWait time.Duration
}

// Server serves the node API over a Backend.
type Server struct {
	cfg     ServerConfig
	backend Backend
	mux     *http.ServeMux
	// closing ends long-lived streams (/raft/watch), which http.Server.Shutdown would otherwise wait for.
	closing   chan struct{}
	closeOnce sync.Once
}

// Close ends every /raft/watch stream; call it before shutting the HTTP server down.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closing) }) }

// NewServer returns the API handler.
func NewServer(b Backend, cfg ServerConfig) *Server {
	if cfg.ForwardClient == nil {
		cfg.ForwardClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.MaxTxBytes <= 0 {
		cfg.MaxTxBytes = 64 << 10
	}
	if cfg.TxWait <= 0 {
		cfg.TxWait = 10 * time.Second
	}
	s := &Server{cfg: cfg, backend: b, mux: http.NewServeMux(), closing: make(chan struct{})}
	s.route("/raft", methods{http.MethodGet: s.status})
	s.route("/raft/watch", methods{http.MethodGet: s.watch})
	s.route("/raft/members", methods{http.MethodGet: s.members, http.MethodPost: s.auth(s.leaderOnly(s.addMember))})
	s.route("/raft/members/{id}", methods{http.MethodDelete: s.auth(s.leaderOnly(s.removeMember))})
	s.route("/raft/transfer-leadership", methods{http.MethodPost: s.auth(s.leaderOnly(s.transfer))})
	s.route("/tx", methods{http.MethodPost: s.leaderOnly(s.submitTx)})
	s.route("/tx/{hash}", methods{http.MethodGet: s.tx})
	s.route("/blocks/{height}", methods{http.MethodGet: s.block})
	s.route("/healthz", methods{http.MethodGet: s.healthz})
	s.route("/readyz", methods{http.MethodGet: s.readyz})
	s.route("/metrics", methods{http.MethodGet: s.metrics})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, Error{Message: fmt.Sprintf("no endpoint %s; see docs/node-api.md", r.URL.Path)})
	})
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type methods map[string]http.HandlerFunc

// route registers a path whose wrong methods get a JSON 405 naming the allowed ones.
func (s *Server) route(pattern string, m methods) {
	allowed := make([]string, 0, len(m))
	for k := range m {
		allowed = append(allowed, k)
	}
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if h, ok := m[r.Method]; ok {
			h(w, r)
			return
		}
		if r.Method == http.MethodHead {
			if h, ok := m[http.MethodGet]; ok {
				h(w, r)
				return
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, Error{Message: fmt.Sprintf("method %s not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or "))})
	})
}

// auth refuses calls without the bearer token. The comparison takes constant time.
func (s *Server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token == "" {
			writeError(w, http.StatusUnauthorized, Error{Message: "membership and transfer calls are disabled: the node was started without an API token"})
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sequencer-node"`)
			writeError(w, http.StatusUnauthorized, Error{Message: "missing or wrong bearer token"})
			return
		}
		next(w, r)
	}
}

// leaderOnly forwards the call to the leader when the backend says this node does not lead. The
// body is buffered so it can be sent again; a forwarded call is never forwarded twice.
func (s *Server) leaderOnly(next func(w http.ResponseWriter, r *http.Request, body []byte) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxTxBytes))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, http.StatusRequestEntityTooLarge, Error{Message: fmt.Sprintf("request body exceeds %d bytes", tooLarge.Limit)})
				return
			}
			writeError(w, http.StatusBadRequest, Error{Message: "cannot read request body: " + err.Error()})
			return
		}
		err = next(w, r, body)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNotLeader) {
			writeBackendError(w, err)
			return
		}
		leader := s.backend.LeaderAPI()
		if r.Header.Get(ForwardedHeader) != "" || leader == "" {
			writeError(w, http.StatusServiceUnavailable, Error{Message: "this node is not the leader and no leader is known yet; retry shortly", LeaderAPI: leader})
			return
		}
		s.forward(w, r, leader, body)
	}
}

func (s *Server) forward(w http.ResponseWriter, r *http.Request, leader string, body []byte) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimRight(leader, "/")+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusInternalServerError, Error{Message: "cannot forward to the leader: " + err.Error()})
		return
	}
	for _, h := range []string{"Authorization", "Content-Type", "Accept"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(ForwardedHeader, "1")
	resp, err := s.cfg.ForwardClient.Do(req)
	if err != nil {
		writeError(w, http.StatusBadGateway, Error{Message: "cannot reach the leader at " + leader + ": " + err.Error(), LeaderAPI: leader})
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.Status())
}

// watch streams the status as server-sent events: one event now and one at every change.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, Error{Message: "streaming is not supported by this connection"})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	var last []byte
	for {
		// Take the change channel before reading the status, so a change in between is not missed.
		changed := s.backend.Changes()
		doc, err := json.Marshal(s.backend.Status())
		if err != nil {
			return
		}
		if !bytes.Equal(doc, last) {
			if _, err := fmt.Fprintf(w, "data: %s\n\n", doc); err != nil {
				return
			}
			flusher.Flush()
			last = doc
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-changed:
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

func (s *Server) members(w http.ResponseWriter, _ *http.Request) {
	cfg, err := s.backend.Members()
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cfg)
}

func (s *Server) addMember(w http.ResponseWriter, _ *http.Request, body []byte) error {
	var req AddMemberRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	if req.ID == "" || req.Address == "" {
		return fmt.Errorf("%w: id and address are required, e.g. {\"id\":\"demo-3\",\"address\":\"demo-3.demo-peers.ns.svc.cluster.local:7000\"}", ErrInvalid)
	}
	if _, _, err := splitHostPort(req.Address); err != nil {
		return fmt.Errorf("%w: address %q must be host:port: %v", ErrInvalid, req.Address, err)
	}
	cfg, err := s.backend.AddMember(req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, MembershipResponse{Configuration: cfg})
	return nil
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, _ []byte) error {
	var idx uint64
	if v := r.URL.Query().Get("configIndex"); v != "" {
		var err error
		if idx, err = strconv.ParseUint(v, 10, 64); err != nil {
			return fmt.Errorf("%w: configIndex %q is not a non-negative integer", ErrInvalid, v)
		}
	}
	cfg, err := s.backend.RemoveMember(r.PathValue("id"), idx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, MembershipResponse{Configuration: cfg})
	return nil
}

func (s *Server) transfer(w http.ResponseWriter, _ *http.Request, body []byte) error {
	var req TransferRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
	}
	resp, err := s.backend.TransferLeadership(req.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) submitTx(w http.ResponseWriter, r *http.Request, body []byte) error {
	if len(body) == 0 {
		return fmt.Errorf("%w: the request body is the transaction and must not be empty", ErrInvalid)
	}
	wait := true
	if v := r.URL.Query().Get("wait"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%w: wait=%q must be true or false", ErrInvalid, v)
		}
		wait = b
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.TxWait)
	defer cancel()
	resp, err := s.backend.SubmitTx(ctx, body, wait)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if resp.Status != TxCommitted {
		code = http.StatusAccepted
	}
	writeJSON(w, code, resp)
	return nil
}

func (s *Server) tx(w http.ResponseWriter, r *http.Request) {
	hash, err := hex.DecodeString(r.PathValue("hash"))
	if err != nil || len(hash) != 32 {
		writeError(w, http.StatusBadRequest, Error{Message: fmt.Sprintf("transaction hash %q must be 64 hex characters", r.PathValue("hash"))})
		return
	}
	resp, err := s.backend.Tx(hash)
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) block(w http.ResponseWriter, r *http.Request) {
	var height uint64
	if v := r.PathValue("height"); v != "latest" {
		h, err := strconv.ParseUint(v, 10, 64)
		if err != nil || h == 0 {
			writeError(w, http.StatusBadRequest, Error{Message: fmt.Sprintf("block height %q must be a positive integer or \"latest\"", v)})
			return
		}
		height = h
	}
	b, raw, err := s.backend.Block(height)
	if err != nil {
		writeBackendError(w, err)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), ContentTypeProtobuf) {
		w.Header().Set("Content-Type", ContentTypeProtobuf)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(raw)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if err := s.backend.Healthy(); err != nil {
		writeError(w, http.StatusServiceUnavailable, Error{Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if err := s.backend.Ready(); err != nil {
		writeError(w, http.StatusServiceUnavailable, Error{Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Metrics == nil {
		writeError(w, http.StatusNotFound, Error{Message: "metrics are not enabled"})
		return
	}
	s.cfg.Metrics.ServeHTTP(w, r)
}

// decodeStrict decodes one JSON object and refuses unknown fields, so a typo is an error, not a no-op.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body is not valid JSON for this call: %v", ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: request body has data after the JSON object", ErrInvalid)
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 {
		return "", 0, errors.New("missing port")
	}
	port, err := strconv.Atoi(addr[i+1:])
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", addr[i+1:])
	}
	return addr[:i], port, nil
}

func writeBackendError(w http.ResponseWriter, err error) {
	body := Error{Message: err.Error()}
	var withIndex interface{ ConfigIndex() uint64 }
	if errors.As(err, &withIndex) {
		body.ConfigIndex = withIndex.ConfigIndex()
	}
	writeError(w, statusFor(err), body)
}

func writeError(w http.ResponseWriter, code int, e Error) {
	writeJSON(w, code, e)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
