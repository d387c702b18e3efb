package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, env map[string]string, args ...string) error {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cmd := newRootCommand()
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	return cmd.Execute()
}

func TestRunFlagErrors(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := runCLI(t, nil, "keygen", "--out", key); err != nil {
		t.Fatal(err)
	}
	if err := runCLI(t, nil, "keygen", "--out", key); err == nil {
		t.Fatal("keygen overwrote an existing key")
	}
	empty := filepath.Join(dir, "empty-token")
	_ = os.WriteFile(empty, nil, 0o600)
	base := []string{"run", "--id", "a", "--chain-id", "c", "--data-dir", dir, "--raft-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", append(base, "--no-such-flag"), nil, "unknown flag"},
		{"missing key", base, nil, "--signing-key-file is required"},
		{"unreadable key", append(base, "--signing-key-file", filepath.Join(dir, "missing")), nil, "missing"},
		{"key is not a key", append(base, "--signing-key-file", empty), nil, empty},
		{"unreadable token", append(base, "--signing-key-file", key, "--api-token-file", filepath.Join(dir, "nope")), nil, "--api-token-file"},
		{"empty token", append(base, "--signing-key-file", key, "--api-token-file", empty), nil, "is empty"},
		{"bad duration", append(base, "--signing-key-file", key, "--block-time", "fast"), nil, "block-time"},
		{"bad env duration", append(base, "--signing-key-file", key), map[string]string{"SEQ_HEARTBEAT_TIMEOUT": "soon"}, "SEQ_HEARTBEAT_TIMEOUT"},
		{"bad cluster state from env", append(base, "--signing-key-file", key), map[string]string{"SEQ_INITIAL_CLUSTER_STATE": "old"}, "--initial-cluster-state"},
		{"election below heartbeat", append(base, "--signing-key-file", key, "--election-timeout", "50ms"), nil, "election timeout"},
		{"tls half configured", append(base, "--signing-key-file", key, "--tls-cert-file", key), nil, "go together"},
		{"positional argument", append(base, "extra"), nil, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := runCLI(t, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := runCLI(t, nil, "keygen", "--out", key); err != nil {
		t.Fatal(err)
	}
	cmd := newRunCommand()
	fs := cmd.Flags()
	t.Setenv("SEQ_ID", "from-env")
	t.Setenv("SEQ_CHAIN_ID", "env-chain")
	t.Setenv("SEQ_BLOCK_TIME", "250ms")
	if err := fs.Parse([]string{"--chain-id", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	id, _ := fs.GetString("id")
	chainID, _ := fs.GetString("chain-id")
	bt, _ := fs.GetDuration("block-time")
	if id != "from-env" || chainID != "from-flag" || bt.String() != "250ms" {
		t.Fatalf("id %q chain %q block time %v: the environment must fill unset flags and lose to given ones", id, chainID, bt)
	}
}
