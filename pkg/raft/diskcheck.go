package raft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// Disk faults are found at start, before Raft reads anything: hashicorp/raft would skip a snapshot whose
// metadata it cannot read (and fall back to an older one) and bbolt can panic on a damaged page in the
// middle of a run. A node with damaged state refuses to start, naming the file; the runbook replaces it
// (wipe the data dir, rejoin as a non-voter).

// checkBoltFile runs bbolt's consistency check over a Raft bolt file, read-only.
func checkBoltFile(path string) (err error) {
	if _, statErr := os.Stat(path); errors.Is(statErr, os.ErrNotExist) {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("raft store %s is corrupted: %v", path, r)
		}
	}()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("raft store %s is locked by another process: %w", path, err)
		}
		return fmt.Errorf("raft store %s is corrupted or unreadable: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
			if len(errs) >= 5 {
				break
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("raft store %s is corrupted: %w", path, errors.Join(errs...))
		}
		return nil
	})
}

// snapshotMeta is the part of hashicorp/raft's snapshot meta.json the check needs.
type snapshotMeta struct {
	ID   string
	Size int64
	CRC  []byte
}

// checkSnapshots verifies every finished snapshot in dir/snapshots: readable metadata and a state file
// whose size and CRC-64 match it.
func checkSnapshots(dataDir string) error {
	root := filepath.Join(dataDir, "snapshots")
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read raft snapshot directory %s: %w", root, err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue // an interrupted snapshot: hashicorp/raft removes it
		}
		if err := checkSnapshot(filepath.Join(root, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func checkSnapshot(dir string) error {
	metaPath := filepath.Join(dir, "meta.json")
	raw, err := os.ReadFile(metaPath)
	if err != nil {
		return fmt.Errorf("raft snapshot metadata %s is unreadable: %w", metaPath, err)
	}
	var meta snapshotMeta
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&meta); err != nil {
		return fmt.Errorf("raft snapshot metadata %s is corrupted: %w", metaPath, err)
	}
	statePath := filepath.Join(dir, "state.bin")
	f, err := os.Open(statePath)
	if err != nil {
		return fmt.Errorf("raft snapshot %s is unreadable: %w", statePath, err)
	}
	defer f.Close()
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("raft snapshot %s is unreadable: %w", statePath, err)
	}
	if n != meta.Size {
		return fmt.Errorf("raft snapshot %s is corrupted: %d bytes, its metadata says %d", statePath, n, meta.Size)
	}
	if !bytes.Equal(h.Sum(nil), meta.CRC) {
		return fmt.Errorf("raft snapshot %s is corrupted: checksum does not match %s", statePath, metaPath)
	}
	return nil
}
