package chain

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyFile copies a store file while its chain is still open: the copy is
// what the disk holds if the process died at that moment.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
}

func TestReopen(t *testing.T) {
	s := newSigner(t)
	dir := t.TempDir()
	c := openChain(t, dir, s)
	blocks := grow(t, c, s, 5)
	want := c.Head()

	crashDir := filepath.Join(t.TempDir(), "crashed")
	copyFile(t, filepath.Join(dir, StoreFileName), filepath.Join(crashDir, StoreFileName))
	// The tx index reaches disk in batches: a crash leaves it behind the chain, and opening
	// indexes the missing blocks again.
	if err := c.index.flush(); err != nil {
		t.Fatal(err)
	}
	staleDir := filepath.Join(t.TempDir(), "stale-index")
	copyFile(t, filepath.Join(dir, TxIndexFileName), filepath.Join(staleDir, TxIndexFileName))
	grown := grow(t, c, s, 8)
	blocks = append(blocks, grown...)
	want = c.Head()
	copyFile(t, filepath.Join(dir, StoreFileName), filepath.Join(staleDir, StoreFileName))
	copyFile(t, filepath.Join(dir, StoreFileName), filepath.Join(crashDir, StoreFileName))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct{ name, dir string }{
		{"after crash (no close)", crashDir},
		{"after crash with a stale tx index", staleDir},
		{"after clean close", dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openChain(t, tt.dir, s)
			got := r.Head()
			if got.Height != want.Height || !bytes.Equal(got.Hash, want.Hash) ||
				!got.Time.Equal(want.Time) || !bytes.Equal(got.StateRoot, want.StateRoot) {
				t.Fatalf("head = %+v, want %+v", got, want)
			}
			if v, ok := r.Get([]byte("k2-1")); !ok || string(v) != "v1 at height 2" {
				t.Fatalf("state k2-1 = %q, %v", v, ok)
			}
			for _, b := range blocks {
				if h, ok := r.TxHeight(TxHash(b.Txs[len(b.Txs)-1])); !ok || h != b.Header.Height {
					t.Fatalf("TxHeight of a tx in block %d = %d, %v", b.Header.Height, h, ok)
				}
			}
			// Raft replays its log after a restart: idempotent.
			for _, b := range blocks {
				if applied, err := r.Apply(b); applied || err != nil {
					t.Fatalf("replay of %d: (%v, %v)", b.Header.Height, applied, err)
				}
			}
			grow(t, r, s, 9) // and the chain continues
		})
	}
}

func TestReopenWrongChain(t *testing.T) {
	s := newSigner(t)
	dir := t.TempDir()
	c := openChain(t, dir, s)
	grow(t, c, s, 1)
	c.Close()
	if _, err := Open(Config{Dir: dir, ChainID: "other", Proposer: s.PublicKey()}); err == nil ||
		!strings.Contains(err.Error(), StoreFileName) {
		t.Fatalf("Open with another chain ID: %v, want error naming the file", err)
	}
}

func TestCorruptedStore(t *testing.T) {
	s := newSigner(t)
	good := t.TempDir()
	c := openChain(t, good, s)
	grow(t, c, s, 30)
	c.Close()
	data, err := os.ReadFile(filepath.Join(good, StoreFileName))
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	tests := []struct {
		name    string
		corrupt func() []byte
	}{
		{"random bytes", func() []byte { return random(8 * page) }},
		{"truncated to part of a page", func() []byte { return data[:100] }},
		{"both meta pages zeroed", func() []byte {
			d := bytes.Clone(data)
			clear(d[:2*page])
			return d
		}},
		{"data pages overwritten with garbage", func() []byte {
			d := bytes.Clone(data)
			copy(d[2*page:], random(len(d)-2*page))
			return d
		}},
		{"truncated to half", func() []byte { return data[:len(data)/2/page*page] }},
		{"pages holding the newest block zeroed", func() []byte {
			// Every page that holds the newest block's tx bytes: at least one
			// is reachable (stale copies may sit in free pages).
			d := bytes.Clone(data)
			marker := []byte("v2 at height 30")
			n := 0
			for off := 2 * page; off < len(d); off += page {
				if bytes.Contains(d[off:off+page], marker) {
					clear(d[off : off+page])
					n++
				}
			}
			if n == 0 {
				t.Fatal("marker not found")
			}
			return d
		}},
		{"data pages zeroed", func() []byte {
			d := bytes.Clone(data)
			clear(d[2*page:])
			return d
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, StoreFileName)
			if err := os.WriteFile(path, tt.corrupt(), 0o600); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			st, err := OpenStore(path)
			if err == nil {
				st.Close()
				t.Fatal("OpenStore accepted a corrupted file")
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name %s", err, path)
			}
			if testing.Verbose() {
				t.Log(err)
			}
			if _, err := Open(Config{Dir: dir, ChainID: testChainID, Proposer: s.PublicKey()}); err == nil {
				t.Fatal("Open accepted a corrupted store")
			}
			// Never "repaired": the file is left as it was for an operator.
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Fatal("OpenStore modified the corrupted file")
			}
		})
	}
}

func TestStoreLockedByAnotherOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), StoreFileName)
	st, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := OpenStore(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("second OpenStore = %v, want a lock error naming the file", err)
	}
}

func TestClosed(t *testing.T) {
	s := newSigner(t)
	c := openChain(t, t.TempDir(), s)
	b, _ := c.Build(nil, t0, s)
	c.Close()
	if _, err := c.Apply(b); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close = %v, want ErrClosed", err)
	}
}

func TestCorruptedStoreReleasesLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), StoreFileName)
	st, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	data, _ := os.ReadFile(path)
	clear(data[2*4096:]) // the freelist page: bbolt panics inside Open
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, err := OpenStore(path)
		if err == nil || strings.Contains(err.Error(), "locked") {
			t.Fatalf("open %d: %v, want a corruption error, not a lock error", i, err)
		}
	}
}
