package chain

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrNotFound is returned for a block that is not stored.
var ErrNotFound = errors.New("not found")

// ErrClosed is returned by a Chain or Store after Close.
var ErrClosed = errors.New("chain store closed")

// Bucket layout of the store file (schema version 1):
//
//	meta    schema → uvarint version; chain_id → string; head → BE uint64 height;
//	        gaps → BE uint64 pairs (from, to) of missing historical blocks
//	blocks  BE uint64 height → protobuf Block
//	txs     sha256(tx) → BE uint64 height of its earliest inclusion
//	state   executor key → value
var (
	bucketMeta   = []byte("meta")
	bucketBlocks = []byte("blocks")
	bucketTxs    = []byte("txs")
	bucketState  = []byte("state")

	keySchema  = []byte("schema")
	keyChainID = []byte("chain_id")
	keyHead    = []byte("head")
	keyGaps    = []byte("gaps")
)

const schemaVersion = 1

// lockTimeout bounds the wait for the file lock, so a second process on the
// same file fails with a clear error instead of hanging.
const lockTimeout = 2 * time.Second

// Store is the chain's bbolt file. Every write transaction is synced before
// it returns (bbolt's default), so a committed block survives a crash.
//
// bbolt panics or faults on some corrupted files; the Store converts those
// into errors naming the file and then refuses further writes, never
// "repairing" by dropping data.
type Store struct {
	db   *bolt.DB
	path string

	mu     sync.Mutex
	broken error // sticky: set after a recovered panic inside bbolt
}

// OpenStore opens (or creates) the store file at path and checks it: a file
// that bbolt cannot open, that makes it panic or fault, or that fails its
// consistency check is reported as an error naming the file.
func OpenStore(path string) (*Store, error) {
	var (
		db   *bolt.DB
		file *os.File // kept to release the file lock if bbolt panics inside Open
	)
	err := guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout: lockTimeout,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				f, err := os.OpenFile(name, flag, perm)
				file = f
				return f, err
			},
		})
		if err != nil {
			return err
		}
		return checkDB(db)
	})
	if err != nil {
		if db != nil {
			_ = guard(db.Close)
		} else if file != nil {
			unlockFile(file)
			_ = file.Close()
		}
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("cannot open chain store %s: file is locked by another process: %w", path, err)
		}
		return nil, fmt.Errorf("cannot open chain store %s: corrupted or unreadable: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.init(); err != nil {
		_ = guard(db.Close)
		return nil, err
	}
	return s, nil
}

// checkDB reads every page reachable from the buckets (in this goroutine,
// where faults become panics), then runs bbolt's consistency check, which
// also verifies page accounting. The walk comes first because bbolt's check
// runs in its own goroutine where a fault on a wild page pointer would crash
// the process; the freelist was already loaded by Open, in this goroutine.
func checkDB(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		fi, err := os.Stat(db.Path())
		if err != nil {
			return err
		}
		if tx.Size() > fi.Size() {
			return fmt.Errorf("file is truncated: %d bytes, its metadata needs %d", fi.Size(), tx.Size())
		}
		if err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return walkBucket(b)
		}); err != nil {
			return err
		}
		var errs []string
		n := 0
		for err := range tx.Check() { // drain fully: Check's goroutine blocks on send
			if n < 5 {
				errs = append(errs, err.Error())
			}
			n++
		}
		if n > 0 {
			return fmt.Errorf("consistency check found %d problem(s): %s", n, strings.Join(errs, "; "))
		}
		return nil
	})
}

func walkBucket(b *bolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if nb := b.Bucket(k); nb != nil {
				return walkBucket(nb)
			}
		}
		return nil
	})
}

// guard runs fn, converting a panic or a memory fault (bbolt reads the file
// through mmap) into an error.
func guard(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{r}
		}
	}()
	return fn()
}

// panicError is a recovered panic from inside bbolt.
type panicError struct{ v any }

func (p *panicError) Error() string { return fmt.Sprintf("bbolt panicked: %v", p.v) }

func (s *Store) init() error {
	return s.update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketBlocks, bucketTxs, bucketState} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil {
			ver, n := binary.Uvarint(v)
			if n <= 0 || ver != schemaVersion {
				return fmt.Errorf("unsupported store schema %x (this binary reads version %d)", v, schemaVersion)
			}
			return nil
		}
		return meta.Put(keySchema, binary.AppendUvarint(nil, schemaVersion))
	})
}

// Path returns the store file's path.
func (s *Store) Path() string { return s.path }

// Close closes the file. Further use returns errors.
func (s *Store) Close() error {
	if err := guard(s.db.Close); err != nil {
		return fmt.Errorf("cannot close chain store %s: %w", s.path, err)
	}
	return nil
}

// view runs a read transaction, converting bbolt panics into errors.
func (s *Store) view(fn func(tx *bolt.Tx) error) error { return s.run(false, fn) }

// update runs a synced write transaction, converting bbolt panics into
// errors. After such a panic the store refuses all further use: the file may
// be damaged, and a loud stop is better than writing on top of it.
func (s *Store) update(fn func(tx *bolt.Tx) error) error { return s.run(true, fn) }

func (s *Store) run(writable bool, fn func(tx *bolt.Tx) error) error {
	if err := s.brokenErr(); err != nil {
		return err
	}
	var fnErr error
	wrapped := func(tx *bolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
	}
	err := guard(func() error {
		if writable {
			return s.db.Update(wrapped)
		}
		return s.db.View(wrapped)
	})
	var p *panicError
	switch {
	case err == nil || err == fnErr:
		return err
	case errors.Is(err, bolt.ErrDatabaseNotOpen):
		return ErrClosed
	case errors.As(err, &p):
		return s.fail(err)
	default:
		return fmt.Errorf("chain store %s: %w", s.path, err)
	}
}

func (s *Store) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == nil {
		s.broken = fmt.Errorf("chain store %s is corrupted or unreadable: %w", s.path, err)
	}
	return s.broken
}

func (s *Store) brokenErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken
}

// heightKey encodes a height so that byte order is numeric order.
func heightKey(h uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), h)
}

func parseHeight(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("height value has %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// gap is a range of missing historical blocks, inclusive.
type gap struct{ from, to uint64 }

func encodeGaps(gaps []gap) []byte {
	out := make([]byte, 0, 16*len(gaps))
	for _, g := range gaps {
		out = binary.BigEndian.AppendUint64(out, g.from)
		out = binary.BigEndian.AppendUint64(out, g.to)
	}
	return out
}

func decodeGaps(v []byte) ([]gap, error) {
	if len(v)%16 != 0 {
		return nil, fmt.Errorf("gap list has %d bytes, not a multiple of 16", len(v))
	}
	gaps := make([]gap, 0, len(v)/16)
	for i := 0; i < len(v); i += 16 {
		g := gap{binary.BigEndian.Uint64(v[i:]), binary.BigEndian.Uint64(v[i+8:])}
		if g.from == 0 || g.from > g.to || (len(gaps) > 0 && g.from <= gaps[len(gaps)-1].to) {
			return nil, fmt.Errorf("invalid gap list entry [%d, %d]", g.from, g.to)
		}
		gaps = append(gaps, g)
	}
	return gaps, nil
}
