package nodeapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWatchParsesEventsAndSkipsKeepalives(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"nodeId\":\"a\",\"height\":1}\n\n")
		fmt.Fprint(w, ": keepalive\n\n")
		fmt.Fprint(w, "data: {\"nodeId\":\"a\",\"height\":2}\n\n")
	}))
	defer srv.Close()
	var heights []uint64
	err := NewClient(srv.URL).Watch(context.Background(), func(s Status) error {
		heights = append(heights, s.Height)
		return nil
	})
	if err != nil {
		t.Fatalf("watch ended with %v", err)
	}
	if len(heights) != 2 || heights[0] != 1 || heights[1] != 2 {
		t.Fatalf("heights %v", heights)
	}
	stop := errors.New("stop")
	if err := NewClient(srv.URL).Watch(context.Background(), func(Status) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error not returned: %v", err)
	}
}

func TestErrorsDecode(t *testing.T) {
	cases := []struct {
		name string
		code int
		body string
		want string
		is   func(error) bool
	}{
		{"json error", 409, `{"message":"stale","configIndex":7}`, "stale", IsConflict},
		{"plain text", 401, "go away", "go away", IsUnauthorized},
		{"empty body", 404, "", "Not Found", IsNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.code)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			_, err := NewClient(srv.URL).Members(context.Background())
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Body.Message != tc.want || !tc.is(err) {
				t.Fatalf("got %v (%+v)", err, apiErr)
			}
		})
	}
}

func TestStatusForMapsSentinels(t *testing.T) {
	cases := map[error]int{
		ErrInvalid:               400,
		ErrNotFound:              404,
		ErrConflict:              409,
		ErrBusy:                  429,
		ErrNotLeader:             503,
		ErrUnavailable:           503,
		ErrTimeout:               504,
		errors.New("unexpected"): 500,
	}
	for err, want := range cases {
		if got := statusFor(fmt.Errorf("wrapped: %w", err)); got != want {
			t.Errorf("%v: %d, want %d", err, got, want)
		}
	}
}
