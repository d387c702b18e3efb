package raft

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	hraft "github.com/hashicorp/raft"
)

// recoveredMarker records which recovery file was applied, so a node restarted with the same file
// does not rewrite its configuration again.
const recoveredMarker = "recovered"

// recoverIfAsked applies a recovery configuration (hashicorp/raft's peers JSON:
// [{"id": "...", "address": "...", "non_voter": false}]) once, before Raft starts. It is the way out of
// a lost quorum: on the most up-to-date survivor, a configuration naming only the survivors lets them
// elect a leader again from their own log. It is never automatic: someone must write the file.
func recoverIfAsked(cfg Config, fsm *FSM, st *stores, trans hraft.Transport, logger hclogger) (bool, error) {
	if cfg.RecoveryFile == "" {
		return false, nil
	}
	data, err := os.ReadFile(cfg.RecoveryFile)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(bytes.TrimSpace(data)) == 0) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot read recovery file %s: %w", cfg.RecoveryFile, err)
	}
	sum := sha256.Sum256(data)
	marker := filepath.Join(cfg.DataDir, recoveredMarker)
	if prev, err := os.ReadFile(marker); err == nil && string(bytes.TrimSpace(prev)) == hex.EncodeToString(sum[:]) {
		return false, nil
	}
	conf, err := hraft.ReadConfigJSON(cfg.RecoveryFile)
	if err != nil {
		return false, fmt.Errorf("recovery file %s is invalid: %w", cfg.RecoveryFile, err)
	}
	self := false
	for _, s := range conf.Servers {
		if string(s.ID) == cfg.ID && s.Suffrage == hraft.Voter {
			self = true
		}
	}
	if !self {
		return false, fmt.Errorf("recovery file %s does not name this node (%s) as a voter: apply it on a survivor that is in it", cfg.RecoveryFile, cfg.ID)
	}
	if has, err := hraft.HasExistingState(st.log, st.stable, st.snaps); err != nil {
		return false, fmt.Errorf("cannot read raft state: %w", err)
	} else if !has {
		// A node that lost its data has nothing to recover from; it rejoins as a non-voter instead.
		logger.Warn("Ignoring the recovery file: this node has no raft state", "file", cfg.RecoveryFile)
		return false, nil
	}
	logger.Warn("Recovering the raft configuration from a file: the cluster had lost its quorum", "file", cfg.RecoveryFile, "servers", len(conf.Servers))
	if err := hraft.RecoverCluster(cfg.hraftConfig(logger), fsm, st.log, st.stable, st.snaps, trans, conf); err != nil {
		return false, fmt.Errorf("cannot recover the raft configuration from %s: %w", cfg.RecoveryFile, err)
	}
	if err := os.WriteFile(marker, []byte(hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		return true, fmt.Errorf("recovered, but cannot record it in %s: %w", marker, err)
	}
	return true, nil
}
