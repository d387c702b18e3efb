package raft

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// stores are the durable parts of a Raft server: one bbolt file for the log and the stable store,
// a file snapshot store keeping two snapshots.
type stores struct {
	log      hraft.LogStore
	stable   hraft.StableStore
	snaps    hraft.SnapshotStore
	boltPath string
	closeFn  func() error
}

const retainSnapshots = 2

func openStores(dataDir string, logger hclogger) (*stores, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create data directory %s: %w", dataDir, err)
	}
	path := filepath.Join(dataDir, "raft.db")
	if err := checkBoltFile(path); err != nil {
		return nil, err
	}
	if err := checkSnapshots(dataDir); err != nil {
		return nil, err
	}
	bolt, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	if err := checkLogStore(bolt, path); err != nil {
		_ = bolt.Close()
		return nil, err
	}
	cached, err := hraft.NewLogCache(1024, bolt)
	if err != nil {
		_ = bolt.Close()
		return nil, fmt.Errorf("cannot create raft log cache: %w", err)
	}
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(dataDir, retainSnapshots, logger)
	if err != nil {
		_ = bolt.Close()
		return nil, fmt.Errorf("cannot open raft snapshot store in %s: %w", filepath.Join(dataDir, "snapshots"), err)
	}
	return &stores{log: cached, stable: bolt, snaps: snaps, boltPath: path, closeFn: bolt.Close}, nil
}

// openBolt opens the Raft bolt file. bbolt panics on some corrupted pages; that becomes an error naming
// the file, so a damaged disk is reported instead of crashing without a word.
func openBolt(path string) (store *raftboltdb.BoltStore, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("raft store %s is corrupted: %v", path, r)
		}
	}()
	store, err = raftboltdb.New(raftboltdb.Options{
		Path:        path,
		BoltOptions: &bbolt.Options{Timeout: 2 * time.Second},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("raft store %s is locked by another process: %w", path, err)
		}
		return nil, fmt.Errorf("cannot open raft store %s: %w", path, err)
	}
	return store, nil
}

// checkLogStore reads every log entry so that a damaged log is found at start, not at the first election.
func checkLogStore(store *raftboltdb.BoltStore, path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("raft log %s is corrupted: %v", path, r)
		}
	}()
	first, err := store.FirstIndex()
	if err != nil {
		return fmt.Errorf("raft log %s is unreadable: %w", path, err)
	}
	last, err := store.LastIndex()
	if err != nil {
		return fmt.Errorf("raft log %s is unreadable: %w", path, err)
	}
	if first == 0 {
		return nil
	}
	// Every entry must decode: the log is short (snapshots compact it), and a damaged entry found now
	// is a clear error instead of a halt in the middle of a term.
	for idx := first; idx <= last; idx++ {
		var entry hraft.Log
		if err := store.GetLog(idx, &entry); err != nil {
			return fmt.Errorf("raft log %s is corrupted at index %d: %w", path, idx, err)
		}
	}
	return nil
}

func (s *stores) close() error {
	if s.closeFn == nil {
		return nil
	}
	return s.closeFn()
}
