package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteTerminationMessage(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(file, []byte("stale message from an earlier run, longer than the new one"), 0o666); err != nil {
		t.Fatal(err)
	}
	fatal := errors.New("raft store /data/raft/raft.db is corrupted: page 7: invalid type\npage 9: unreachable")
	if err := writeTerminationMessage(file, fatal); err != nil {
		t.Fatal(err)
	}
	want := "node: raft store /data/raft/raft.db is corrupted: page 7: invalid type; page 9: unreachable\n"
	if got, _ := os.ReadFile(file); string(got) != want {
		t.Errorf("termination message = %q, want %q", got, want)
	}

	missing := filepath.Join(dir, "absent")
	if err := writeTerminationMessage(missing, fatal); err != nil {
		t.Errorf("a missing file is not an error: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the termination message file was created outside a container: %v", err)
	}
	if err := writeTerminationMessage("", fatal); err != nil {
		t.Errorf("no path: %v", err)
	}
	if err := writeTerminationMessage(dir, fatal); err == nil {
		t.Errorf("writing to a directory should fail")
	}
}

// A node that refuses to start leaves its reason in the termination message file.
func TestRunWritesTerminationMessage(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(file, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	missingKey := filepath.Join(dir, "no-key")
	err := runCLI(t, nil, "run", "--id", "a", "--chain-id", "c", "--data-dir", dir, "--raft-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--signing-key-file", missingKey, "--termination-message-path", file)
	if err == nil {
		t.Fatal("run without a signing key started")
	}
	got, _ := os.ReadFile(file)
	if string(got) != fatalLine(err)+"\n" || !strings.Contains(string(got), missingKey) {
		t.Errorf("termination message = %q, want %q", got, fatalLine(err)+"\n")
	}
}
