package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/seqops/sequencer-operator/internal/localcluster/kubelet"
)

// registryDir holds a copy of every live cluster's state, keyed by its bridge. It lets Start remove
// what a crashed cluster left behind (a test killed by a timeout leaves its bridge and namespaces, and
// its data dir may be gone already) without anybody running `down` by hand.
var registryDir = filepath.Join(kubelet.MountpointsDir, "clusters")

// staleAfter protects a cluster that is still starting: its first component is recorded within
// milliseconds of its bridge.
const staleAfter = time.Minute

func registryPath(bridge string) string { return filepath.Join(registryDir, bridge+".json") }

func register(s *State) {
	if s.Bridge == "" {
		return
	}
	data, err := json.Marshal(s)
	if err != nil {
		return
	}
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		return
	}
	_ = os.WriteFile(registryPath(s.Bridge), data, 0o644)
}

func unregister(s *State) {
	if s.Bridge == "" {
		return
	}
	_ = os.Remove(registryPath(s.Bridge))
	_ = os.Remove(registryDir) // only when empty
}

// reapStale tears down registered clusters none of whose processes run any more.
func reapStale(ctx context.Context, log logr.Logger) {
	entries, err := os.ReadDir(registryDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < staleAfter {
			continue
		}
		data, err := os.ReadFile(filepath.Join(registryDir, e.Name()))
		if err != nil {
			continue
		}
		var s State
		if json.Unmarshal(data, &s) != nil {
			continue
		}
		alive := false
		for _, p := range s.Processes {
			if p.Alive() {
				alive = true
			}
		}
		if alive {
			continue
		}
		log.Info("Removing leftovers of a local cluster that died without down", "bridge", s.Bridge, "dataDir", s.DataDir)
		if err := downState(ctx, &s, log); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Error(err, "Cannot remove leftovers", "bridge", s.Bridge)
		}
	}
}
