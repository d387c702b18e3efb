package nodeapi

import (
	"errors"
	"net/http"
)

// Errors a Backend wraps (fmt.Errorf("...: %w", ErrX)) so the server answers with the right status.
var (
	// ErrNotLeader: the call must run on the leader; the server forwards it there.
	ErrNotLeader = errors.New("this node is not the leader")
	// ErrInvalid: the request is malformed or asks for something impossible (400).
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: no such block, transaction or member (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: a stale configIndex or a clash with an existing member (409).
	ErrConflict = errors.New("conflict")
	// ErrBusy: back-pressure, e.g. a full mempool; retry later (429).
	ErrBusy = errors.New("busy")
	// ErrTimeout: the transaction was accepted but not committed in time; poll GET /tx/{hash} (504).
	ErrTimeout = errors.New("timed out")
	// ErrUnavailable: the node cannot serve the call now, e.g. no leader is known (503).
	ErrUnavailable = errors.New("unavailable")
)

func statusFor(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrBusy):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
