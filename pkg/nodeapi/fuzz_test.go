package nodeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fuzzBackend is a leader that accepts everything. It checks that every call the server makes holds
// a request the handlers validated, so malformed input must be refused before it reaches a backend.
type fuzzBackend struct {
	t         *testing.T
	maxTx     int
	lastCalls []string
}

func (b *fuzzBackend) Status() Status                  { return Status{NodeID: "n0", State: StateLeader} }
func (b *fuzzBackend) Changes() <-chan struct{}        { return make(chan struct{}) }
func (b *fuzzBackend) Members() (Configuration, error) { return Configuration{Index: 1}, nil }
func (b *fuzzBackend) LeaderAPI() string               { return "" }
func (b *fuzzBackend) Healthy() error                  { return nil }
func (b *fuzzBackend) Ready() error                    { return nil }

func (b *fuzzBackend) AddMember(req AddMemberRequest) (Configuration, error) {
	b.lastCalls = append(b.lastCalls, "add")
	if req.ID == "" || req.Address == "" {
		b.t.Fatalf("AddMember reached the backend without id or address: %+v", req)
	}
	if _, _, err := splitHostPort(req.Address); err != nil {
		b.t.Fatalf("AddMember reached the backend with address %q: %v", req.Address, err)
	}
	return Configuration{Index: 2}, nil
}

func (b *fuzzBackend) RemoveMember(id string, _ uint64) (Configuration, error) {
	b.lastCalls = append(b.lastCalls, "remove")
	if id == "" {
		b.t.Fatal("RemoveMember reached the backend with an empty id")
	}
	return Configuration{Index: 3}, nil
}

func (b *fuzzBackend) TransferLeadership(id string) (TransferResponse, error) {
	b.lastCalls = append(b.lastCalls, "transfer")
	return TransferResponse{LeaderID: id}, nil
}

func (b *fuzzBackend) SubmitTx(_ context.Context, tx []byte, _ bool) (TxResponse, error) {
	b.lastCalls = append(b.lastCalls, "submit")
	if len(tx) == 0 || len(tx) > b.maxTx {
		b.t.Fatalf("SubmitTx reached the backend with a %d-byte tx (limit %d)", len(tx), b.maxTx)
	}
	return TxResponse{Hash: "00", Status: TxCommitted, Height: 1}, nil
}

func (b *fuzzBackend) Tx(hash []byte) (TxResponse, error) {
	b.lastCalls = append(b.lastCalls, "tx")
	if len(hash) != 32 {
		b.t.Fatalf("Tx reached the backend with a %d-byte hash", len(hash))
	}
	return TxResponse{Status: TxCommitted, Height: 1}, nil
}

func (b *fuzzBackend) Block(height uint64) (*Block, []byte, error) {
	b.lastCalls = append(b.lastCalls, "block")
	return &Block{Height: height}, []byte{0x0a, 0x00}, nil
}

// fuzzMethods are the methods the fuzzer picks from by index; anything else is sent as is.
var fuzzMethods = []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodHead, http.MethodPut, http.MethodPatch}

// fuzzPaths are path templates; "{}" is replaced with the fuzzed segment.
var fuzzPaths = []string{
	"/raft", "/raft/watch", "/raft/members", "/raft/members/{}", "/raft/members/{}?configIndex={}",
	"/raft/transfer-leadership", "/tx", "/tx?wait={}", "/tx/{}", "/blocks/{}", "/blocks/latest",
	"/healthz", "/readyz", "/metrics", "/{}",
}

// FuzzServerRequest sends arbitrary requests (method, path, query, body, auth header, Accept) to every
// node API handler over a backend that accepts everything. The server must never panic or hang, must
// answer every request with a status the API documents and a JSON error body for 4xx/5xx, must not
// answer 500 (the backend never fails), and must refuse malformed input before the backend sees it.
func FuzzServerRequest(f *testing.F) {
	f.Add(uint8(1), uint8(2), "", []byte(`{"id":"n3","address":"10.0.0.3:7000"}`), true, "")
	f.Add(uint8(1), uint8(2), "", []byte(`{"id":"n3","address":"10.0.0.3:7000","voter":true,"configIndex":4}`), true, "")
	f.Add(uint8(1), uint8(2), "", []byte(`{"id":"n3","address":"nohost"}`), true, "")
	f.Add(uint8(1), uint8(2), "", []byte(`{"id":"n3","address":"h:0"} {}`), true, "")
	f.Add(uint8(1), uint8(2), "", []byte(`{"id":"n3","extra":1}`), true, "")
	f.Add(uint8(2), uint8(4), "n3", []byte(nil), true, "")
	f.Add(uint8(2), uint8(3), "n%2F3", []byte(nil), true, "")
	f.Add(uint8(1), uint8(5), "", []byte(`{"id":"n1"}`), true, "")
	f.Add(uint8(1), uint8(5), "", []byte(`  `), true, "")
	f.Add(uint8(1), uint8(5), "", []byte(`{"id":"n1"}`), false, "")
	f.Add(uint8(1), uint8(6), "", []byte("set a 1"), false, "")
	f.Add(uint8(1), uint8(7), "false", []byte("set a 1"), false, "")
	f.Add(uint8(1), uint8(7), "maybe", []byte("set a 1"), false, "")
	f.Add(uint8(1), uint8(6), "", []byte(nil), false, "")
	f.Add(uint8(0), uint8(8), strings.Repeat("ab", 32), []byte(nil), false, "")
	f.Add(uint8(0), uint8(8), "zz", []byte(nil), false, "")
	f.Add(uint8(0), uint8(9), "7", []byte(nil), false, ContentTypeProtobuf)
	f.Add(uint8(0), uint8(9), "0", []byte(nil), false, "")
	f.Add(uint8(0), uint8(9), "-1", []byte(nil), false, "")
	f.Add(uint8(0), uint8(9), "18446744073709551616", []byte(nil), false, "")
	f.Add(uint8(0), uint8(10), "", []byte(nil), false, "")
	f.Add(uint8(0), uint8(1), "", []byte(nil), false, "")
	f.Add(uint8(4), uint8(0), "", []byte(nil), false, "")
	f.Add(uint8(3), uint8(11), "", []byte(nil), false, "")
	f.Add(uint8(0), uint8(14), "../raft", []byte(nil), false, "")
	const maxTx = 1 << 10
	f.Fuzz(func(t *testing.T, method, path uint8, segment string, body []byte, auth bool, accept string) {
		backend := &fuzzBackend{t: t, maxTx: maxTx}
		srv := NewServer(backend, ServerConfig{Token: "secret", MaxTxBytes: maxTx, TxWait: time.Second})
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		target := strings.ReplaceAll(fuzzPaths[int(path)%len(fuzzPaths)], "{}", segment)
		req, err := http.NewRequest(m, "http://node"+target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		if auth {
			req.Header.Set("Authorization", "Bearer secret")
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		// The watch stream ends with its request; an ended context makes it answer once and return.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req = req.WithContext(ctx)
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeHTTP(rec, req)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s %s hangs", m, target)
		}
		code := rec.Code
		switch code {
		case http.StatusOK, http.StatusAccepted, http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound,
			http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable:
		case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			// ServeMux cleans paths such as /a/../b with a redirect before any handler runs.
			if len(backend.lastCalls) != 0 {
				t.Fatalf("redirected %s %s after calling the backend", m, target)
			}
			return
		default:
			t.Fatalf("%s %s answered %d: %s", m, target, code, rec.Body.String())
		}
		if code >= 400 && m != http.MethodHead {
			var e Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Message == "" {
				t.Fatalf("%s %s answered %d with a body that is not a JSON error: %q", m, target, code, rec.Body.String())
			}
		}
		if code >= 400 && len(backend.lastCalls) > 0 && code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s reached the backend (%v) and then answered %d", m, target, backend.lastCalls, code)
		}
	})
}

// The fuzz target's tables must cover every route the server registers.
func TestFuzzPathsCoverRoutes(t *testing.T) {
	routes := []string{"/raft", "/raft/watch", "/raft/members", "/raft/members/{}", "/raft/transfer-leadership", "/tx", "/tx/{}", "/blocks/{}", "/healthz", "/readyz", "/metrics"}
	have := strings.Join(fuzzPaths, " ")
	for _, r := range routes {
		if !strings.Contains(have, r) {
			t.Errorf("fuzzPaths misses %s", r)
		}
	}

}
