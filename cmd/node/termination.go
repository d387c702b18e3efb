package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// fatalLine is how a fatal error is reported: one line, even when several flags are wrong.
func fatalLine(err error) string {
	return "node: " + strings.ReplaceAll(err.Error(), "\n", "; ")
}

// writeTerminationMessage puts the fatal error where Kubernetes looks for a container's last words: the file
// at --termination-message-path, which the kubelet mounts into the container and copies into the pod's
// status (lastState.terminated.message). The file is never created: outside a container it does not exist
// and nothing is written.
func writeTerminationMessage(path string, fatal error) error {
	if path == "" || fatal == nil {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot open termination message file: %w", err)
	}
	_, err = fmt.Fprintln(f, fatalLine(fatal))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write termination message file %s: %w", path, err)
	}
	return nil
}
