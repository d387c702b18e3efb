package kubelet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

// Termination messages work as in the real kubelet: every container gets a fresh, empty file of its own
// bind-mounted at its terminationMessagePath; when the container ends, the file's last 4096 bytes become
// status.containerStatuses[].state.terminated.message (and lastState after a restart). With
// terminationMessagePolicy FallbackToLogsOnError, a failed container that wrote nothing there gets the tail
// of its log instead (the last 80 lines, at most 2048 bytes).
const (
	maxTerminationMessageBytes = 4 * 1024
	maxTerminationLogLines     = 80
	maxTerminationLogBytes     = 2 * 1024
)

// terminationFile is the host file mounted at the container's terminationMessagePath.
func (c *containerRuntime) terminationFile() string {
	return filepath.Join(c.pr.dir, "containers", c.spec.Name, "termination-log")
}

// resetTerminationFile empties the file before a start, so a restarted container's message is its own. It
// is world-writable because the container's user is whatever the pod says.
func resetTerminationFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cannot create termination message dir: %w", err)
	}
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		return fmt.Errorf("cannot create termination message file: %w", err)
	}
	// WriteFile's mode is filtered by the umask.
	if err := os.Chmod(path, 0o666); err != nil {
		return fmt.Errorf("cannot make termination message file writable: %w", err)
	}
	return nil
}

// terminationMessage is the message of a container that ended with exitCode: the termination file's
// content, or, when that is empty or missing and the policy allows, the tail of the container's log.
func terminationMessage(file, logFile string, policy corev1.TerminationMessagePolicy, exitCode int) string {
	msg, err := readTail(file, maxTerminationMessageBytes)
	switch {
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("Error on reading termination log %s: %v", file, err)
	case len(msg) > 0 || policy != corev1.TerminationMessageFallbackToLogsOnError || exitCode == 0:
		return string(msg)
	}
	tail, err := readTail(logFile, maxTerminationLogBytes)
	if err != nil {
		return ""
	}
	lines := bytes.SplitAfter(tail, []byte("\n"))
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1]
	}
	if len(lines) > maxTerminationLogLines {
		lines = lines[len(lines)-maxTerminationLogLines:]
	}
	return string(bytes.Join(lines, nil))
}

// readTail reads at most max bytes from the end of path.
func readTail(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(io.LimitReader(f, max))
}
