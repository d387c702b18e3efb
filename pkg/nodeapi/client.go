package nodeapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client is a typed client of one node's API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithToken sets the bearer token sent on membership and transfer calls.
func WithToken(token string) ClientOption { return func(c *Client) { c.token = token } }

// WithHTTPClient replaces the HTTP client (for TLS settings or timeouts).
func WithHTTPClient(h *http.Client) ClientOption { return func(c *Client) { c.http = h } }

// NewClient returns a client of the node API at base, e.g. "http://demo-0.demo-peers.ns.svc.cluster.local:8080".
func NewClient(base string, opts ...ClientOption) *Client {
	c := &Client{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL is the node API address this client talks to.
func (c *Client) BaseURL() string { return c.base }

// APIError is a non-2xx answer of the node API.
type APIError struct {
	StatusCode int
	Body       Error
}

func (e *APIError) Error() string {
	return fmt.Sprintf("node API answered %d: %s", e.StatusCode, e.Body.Message)
}

// IsConflict reports whether err is a 409: a stale configIndex.
func IsConflict(err error) bool { return statusOf(err) == http.StatusConflict }

// IsUnauthorized reports whether err is a 401: a missing or wrong token.
func IsUnauthorized(err error) bool { return statusOf(err) == http.StatusUnauthorized }

// IsNotFound reports whether err is a 404.
func IsNotFound(err error) bool { return statusOf(err) == http.StatusNotFound }

func statusOf(err error) int {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode
	}
	return 0
}

// Status fetches GET /raft.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if err := c.do(ctx, http.MethodGet, "/raft", nil, &s, false); err != nil {
		return nil, err
	}
	return &s, nil
}

// Watch streams GET /raft/watch and calls fn with every status document until ctx ends, the stream
// ends, or fn returns an error. The first document is the current status.
func (c *Client) Watch(ctx context.Context, fn func(Status) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/raft/watch", nil)
	if err != nil {
		return fmt.Errorf("cannot build watch request: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	// The stream is long-lived: use the transport without the client's overall timeout.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return fmt.Errorf("cannot watch %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	var data bytes.Buffer
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if data.Len() == 0 {
				continue
			}
			var s Status
			if err := json.Unmarshal(data.Bytes(), &s); err != nil {
				return fmt.Errorf("cannot decode watch event from %s: %w", c.base, err)
			}
			data.Reset()
			if err := fn(s); err != nil {
				return err
			}
		case bytes.HasPrefix(line, []byte("data:")):
			data.Write(bytes.TrimSpace(line[len("data:"):]))
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("watch of %s broke: %w", c.base, err)
	}
	return ctx.Err()
}

// Members fetches GET /raft/members.
func (c *Client) Members(ctx context.Context) (*Configuration, error) {
	var cfg Configuration
	if err := c.do(ctx, http.MethodGet, "/raft/members", nil, &cfg, false); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// AddMember asks the cluster to add a member (a non-voter unless req.Voter).
func (c *Client) AddMember(ctx context.Context, req AddMemberRequest) (*Configuration, error) {
	var resp MembershipResponse
	if err := c.do(ctx, http.MethodPost, "/raft/members", req, &resp, true); err != nil {
		return nil, err
	}
	return &resp.Configuration, nil
}

// RemoveMember asks the cluster to remove member id; configIndex 0 skips the compare-and-set.
func (c *Client) RemoveMember(ctx context.Context, id string, configIndex uint64) (*Configuration, error) {
	path := "/raft/members/" + url.PathEscape(id)
	if configIndex != 0 {
		path += "?configIndex=" + strconv.FormatUint(configIndex, 10)
	}
	var resp MembershipResponse
	if err := c.do(ctx, http.MethodDelete, path, nil, &resp, true); err != nil {
		return nil, err
	}
	return &resp.Configuration, nil
}

// TransferLeadership hands leadership to member id, or to the most caught-up voter when id is empty.
func (c *Client) TransferLeadership(ctx context.Context, id string) (*TransferResponse, error) {
	var resp TransferResponse
	if err := c.do(ctx, http.MethodPost, "/raft/transfer-leadership", TransferRequest{ID: id}, &resp, true); err != nil {
		return nil, err
	}
	return &resp, nil
}

// SubmitTx submits a transaction. With wait it returns once the transaction is committed; without,
// as soon as the leader accepted it into its mempool.
func (c *Client) SubmitTx(ctx context.Context, tx []byte, wait bool) (*TxResponse, error) {
	path := "/tx"
	if !wait {
		path += "?wait=false"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(tx))
	if err != nil {
		return nil, fmt.Errorf("cannot build tx request: %w", err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	var resp TxResponse
	if err := c.send(req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Tx fetches GET /tx/{hash}.
func (c *Client) Tx(ctx context.Context, hash string) (*TxResponse, error) {
	var resp TxResponse
	if err := c.do(ctx, http.MethodGet, "/tx/"+url.PathEscape(hash), nil, &resp, false); err != nil {
		return nil, err
	}
	return &resp, nil
}

// LatestBlock fetches GET /blocks/latest.
func (c *Client) LatestBlock(ctx context.Context) (*Block, error) {
	var b Block
	if err := c.do(ctx, http.MethodGet, "/blocks/latest", nil, &b, false); err != nil {
		return nil, err
	}
	return &b, nil
}

// Block fetches GET /blocks/{height}.
func (c *Client) Block(ctx context.Context, height uint64) (*Block, error) {
	var b Block
	if err := c.do(ctx, http.MethodGet, "/blocks/"+strconv.FormatUint(height, 10), nil, &b, false); err != nil {
		return nil, err
	}
	return &b, nil
}

// BlockProto fetches GET /blocks/{height} in its protobuf encoding (a chainpb.Block).
func (c *Client) BlockProto(ctx context.Context, height uint64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/blocks/"+strconv.FormatUint(height, 10), nil)
	if err != nil {
		return nil, fmt.Errorf("cannot build block request: %w", err)
	}
	req.Header.Set("Accept", ContentTypeProtobuf)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot fetch block %d from %s: %w", height, c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, decodeError(resp)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 256<<20))
}

// Ready reports whether GET /readyz answers 200.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil, false)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any, auth bool) error {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("cannot encode request to %s: %w", path, err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return fmt.Errorf("cannot build request %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth && c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.send(req, out)
}

func (c *Client) send(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot call %s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("cannot decode answer of %s %s: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

func decodeError(resp *http.Response) error {
	apiErr := &APIError{StatusCode: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(data, &apiErr.Body); err != nil || apiErr.Body.Message == "" {
		apiErr.Body.Message = strings.TrimSpace(string(data))
		if apiErr.Body.Message == "" {
			apiErr.Body.Message = http.StatusText(resp.StatusCode)
		}
	}
	return apiErr
}
