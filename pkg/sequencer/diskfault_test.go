package sequencer_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/seqops/sequencer-operator/pkg/failover"
	"github.com/seqops/sequencer-operator/pkg/sequencer"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestCorruptedStateIsReportedAtStart damages each file of a node's data dir in turn: the node must
// refuse to start, with an error that names the damaged file, rather than serve or produce from it.
func TestCorruptedStateIsReportedAtStart(t *testing.T) {
	key := newKey(t)
	dir := t.TempDir()
	cfg := sequencer.Config{
		ID: "solo", ChainID: "disk-test", DataDir: dir, Bootstrap: true, SigningKey: key,
		RaftBind: freeAddr(t), HTTPAddr: freeAddr(t),
		Producer:          failover.Config{BlockTime: 20 * time.Millisecond},
		SnapshotThreshold: 8, TrailingLogs: 4, SnapshotInterval: 50 * time.Millisecond,
	}
	cfg.RaftAdvertise = cfg.RaftBind
	n, err := sequencer.New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n.Status().LastSnapshotIndex == 0 || n.Chain().Head().Height < 30 {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot and 30 blocks in time: %+v", n.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot on disk")
	}
	snapDir := filepath.Dir(snaps[0])

	// The undamaged copy starts: the checks do not refuse good state.
	good := copyTree(t, dir)
	cfgGood := cfg
	cfgGood.DataDir = good
	if n, err := sequencer.New(cfgGood, zaptest.NewLogger(t)); err != nil {
		t.Fatalf("an undamaged data dir is refused: %v", err)
	} else {
		n.Kill()
	}

	cases := []struct {
		name   string
		file   string // relative to the data dir
		damage func(t *testing.T, path string)
	}{
		{"raft log and stable store", "raft/raft.db", scribbleFrom(8192)},
		{"raft log truncated", "raft/raft.db", truncate(5000)},
		{"raft snapshot state", rel(t, dir, filepath.Join(snapDir, "state.bin")), scribble(20)},
		{"raft snapshot metadata", rel(t, dir, filepath.Join(snapDir, "meta.json")), scribble(0)},
		{"chain store", "chain/chain.db", scribbleFrom(8192)},
		{"tx index", "chain/txindex.db", scribbleFrom(8192)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			copyDir := copyTree(t, dir)
			path := filepath.Join(copyDir, tc.file)
			tc.damage(t, path)
			c := cfg
			c.DataDir = copyDir
			n, err := sequencer.New(c, zaptest.NewLogger(t))
			if err == nil {
				n.Kill()
				t.Fatalf("a node with a damaged %s started", tc.file)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("the error does not name %s: %v", path, err)
			}
		})
	}
}

func rel(t *testing.T, base, path string) string {
	t.Helper()
	r, err := filepath.Rel(base, path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// scribble overwrites 64 bytes at offset with garbage.
func scribble(offset int64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		garbage := []byte(strings.Repeat("\xde\xad\xbe\xef", 16))
		if _, err := f.WriteAt(garbage, offset); err != nil {
			t.Fatal(err)
		}
	}
}

// scribbleFrom overwrites everything after offset (all data pages) with garbage.
func scribbleFrom(offset int64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		for off := offset; off < info.Size(); off += 64 {
			scribble(off)(t, path)
		}
	}
}

func truncate(size int64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
}

func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, r)
		if info.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, info.Mode())
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
