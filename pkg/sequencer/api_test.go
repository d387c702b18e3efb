package sequencer_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/seqops/sequencer-operator/pkg/chain"
	"github.com/seqops/sequencer-operator/pkg/nodeapi"
)

func TestNodeAPI(t *testing.T) {
	c := newTestCluster(t, "n0", "n1", "n2")
	c.form()
	leader := c.leader()
	follower := c.followers(leader.id)[0]
	c.addNode("n3", false)

	t.Run("membership calls need the token", func(t *testing.T) {
		anon := nodeapi.NewClient(leader.srv.URL)
		_, err := anon.AddMember(context.Background(), nodeapi.AddMemberRequest{ID: "n3", Address: raftAddr("n3")})
		if !nodeapi.IsUnauthorized(err) {
			t.Fatalf("add without token: want 401, got %v", err)
		}
		wrong := nodeapi.NewClient(leader.srv.URL, nodeapi.WithToken("not-the-token"))
		if _, err := wrong.RemoveMember(context.Background(), "n2", 0); !nodeapi.IsUnauthorized(err) {
			t.Fatalf("remove with a wrong token: want 401, got %v", err)
		}
		if _, err := anon.TransferLeadership(context.Background(), ""); !nodeapi.IsUnauthorized(err) {
			t.Fatalf("transfer without token: want 401, got %v", err)
		}
	})

	t.Run("a stale configuration index gets 409 with the current index", func(t *testing.T) {
		cfg, err := leader.client.Members(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_, err = leader.client.AddMember(context.Background(), nodeapi.AddMemberRequest{ID: "n3", Address: raftAddr("n3"), ConfigIndex: cfg.Index - 1})
		if !nodeapi.IsConflict(err) {
			t.Fatalf("want 409, got %v", err)
		}
		var apiErr *nodeapi.APIError
		if !asAPIError(err, &apiErr) || apiErr.Body.ConfigIndex != cfg.Index {
			t.Fatalf("409 should carry the current index %d: %+v", cfg.Index, apiErr)
		}
		// With the current index the change goes through, and the index moves on.
		after, err := leader.client.AddMember(context.Background(), nodeapi.AddMemberRequest{ID: "n3", Address: raftAddr("n3"), ConfigIndex: cfg.Index})
		if err != nil {
			t.Fatalf("add with the current index: %v", err)
		}
		if after.Index <= cfg.Index {
			t.Fatalf("configuration index did not advance: %d -> %d", cfg.Index, after.Index)
		}
		if _, err := leader.client.RemoveMember(context.Background(), "n3", cfg.Index); !nodeapi.IsConflict(err) {
			t.Fatalf("remove with a stale index: want 409, got %v", err)
		}
	})

	t.Run("malformed requests get 4xx JSON errors", func(t *testing.T) {
		cases := []struct {
			name, method, path, body string
			auth                     bool
			want                     int
		}{
			{"member body not JSON", "POST", "/raft/members", "{not json", true, 400},
			{"member unknown field", "POST", "/raft/members", `{"id":"x","address":"x:1","vote":true}`, true, 400},
			{"member without address", "POST", "/raft/members", `{"id":"x"}`, true, 400},
			{"member address without port", "POST", "/raft/members", `{"id":"x","address":"x"}`, true, 400},
			{"config index not a number", "DELETE", "/raft/members/n2?configIndex=abc", "", true, 400},
			{"transfer body not JSON", "POST", "/raft/transfer-leadership", "[]", true, 400},
			{"empty transaction", "POST", "/tx", "", false, 400},
			{"wait not a bool", "POST", "/tx?wait=maybe", "set a b", false, 400},
			{"transaction too large", "POST", "/tx", strings.Repeat("x", 70<<10), false, 413},
			{"bad tx hash", "GET", "/tx/xyz", "", false, 400},
			{"unknown tx", "GET", "/tx/" + strings.Repeat("ab", 32), "", false, 404},
			{"bad height", "GET", "/blocks/-1", "", false, 400},
			{"height zero", "GET", "/blocks/0", "", false, 400},
			{"block not yet made", "GET", "/blocks/999999999", "", false, 404},
			{"wrong method", "PUT", "/raft", "", false, 405},
			{"unknown path", "GET", "/nope", "", false, 404},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(tc.method, leader.srv.URL+tc.path, strings.NewReader(tc.body))
				if tc.auth {
					req.Header.Set("Authorization", "Bearer "+testToken)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				data, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tc.want {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, data)
				}
				var e nodeapi.Error
				if err := json.Unmarshal(data, &e); err != nil || e.Message == "" {
					t.Fatalf("error body is not JSON with a message: %q", data)
				}
			})
		}
	})

	t.Run("a follower forwards leader-only calls", func(t *testing.T) {
		resp, err := follower.client.SubmitTx(context.Background(), []byte("set via follower"), true)
		if err != nil || resp.Status != nodeapi.TxCommitted {
			t.Fatalf("tx through follower: %+v, %v", resp, err)
		}
		cfg, err := follower.client.RemoveMember(context.Background(), "n3", 0)
		if err != nil {
			t.Fatalf("remove through follower: %v", err)
		}
		if member(*cfg, "n3") != nil {
			t.Fatalf("n3 still a member: %+v", cfg.Servers)
		}
		// Resubmitting a committed transaction is answered from the index, never included twice.
		again, err := follower.client.SubmitTx(context.Background(), []byte("set via follower"), true)
		if err != nil || again.Height != resp.Height {
			t.Fatalf("resubmission: %+v, %v; want height %d", again, err, resp.Height)
		}
	})

	t.Run("blocks in JSON and protobuf agree", func(t *testing.T) {
		latest, err := follower.client.LatestBlock(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		raw, err := follower.client.BlockProto(context.Background(), latest.Height)
		if err != nil {
			t.Fatal(err)
		}
		b, err := chain.UnmarshalBlock(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.GetHeader().GetHeight(); got != latest.Height {
			t.Fatalf("protobuf block height %d, JSON %d", got, latest.Height)
		}
	})

	t.Run("watch streams status changes", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var heights []uint64
		err := follower.client.Watch(ctx, func(s nodeapi.Status) error {
			heights = append(heights, s.Height)
			if len(heights) == 3 {
				cancel()
			}
			return nil
		})
		if len(heights) < 3 || heights[2] <= heights[0] {
			t.Fatalf("watch delivered %v (%v)", heights, err)
		}
	})
}

func asAPIError(err error, target **nodeapi.APIError) bool {
	e, ok := err.(*nodeapi.APIError)
	if ok {
		*target = e
	}
	return ok
}
