package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestTerminationMessage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var longLog strings.Builder
	for i := range 200 {
		fmt.Fprintf(&longLog, "line %03d\n", i)
	}
	msgFile := write("msg", "node: raft store /data/raft/raft.db is corrupted\n")
	empty := write("empty", "")
	log := write("log", "starting\nnode: cannot open chain store\n")
	long := write("long", longLog.String())
	big := write("big", strings.Repeat("a", 5000)+"END")
	missing := filepath.Join(dir, "missing")
	fallback := corev1.TerminationMessageFallbackToLogsOnError

	for _, tc := range []struct {
		name      string
		file, log string
		policy    corev1.TerminationMessagePolicy
		exit      int
		want      string
	}{
		{"file", msgFile, log, corev1.TerminationMessageReadFile, 1, "node: raft store /data/raft/raft.db is corrupted\n"},
		{"file wins over logs", msgFile, log, fallback, 1, "node: raft store /data/raft/raft.db is corrupted\n"},
		{"empty file, policy File", empty, log, corev1.TerminationMessageReadFile, 1, ""},
		{"empty file, fallback to logs", empty, log, fallback, 1, "starting\nnode: cannot open chain store\n"},
		{"no file, fallback to logs", missing, log, fallback, 1, "starting\nnode: cannot open chain store\n"},
		{"no path, fallback to logs", "", log, fallback, 2, "starting\nnode: cannot open chain store\n"},
		{"success never falls back", empty, log, fallback, 0, ""},
		{"missing log", empty, missing, fallback, 1, ""},
		{"file is cut to its last 4096 bytes", big, log, fallback, 1, strings.Repeat("a", 4093) + "END"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := terminationMessage(tc.file, tc.log, tc.policy, tc.exit); got != tc.want {
				t.Errorf("terminationMessage = %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("log tail is at most 80 lines and 2048 bytes", func(t *testing.T) {
		got := terminationMessage(empty, long, fallback, 1)
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(lines) != 80 || lines[0] != "line 120" || lines[79] != "line 199" {
			t.Errorf("tail has %d lines, %q .. %q; want line 120 .. line 199", len(lines), lines[0], lines[len(lines)-1])
		}
		got = terminationMessage(empty, big, fallback, 1)
		if len(got) != 2048 || !strings.HasSuffix(got, "END") {
			t.Errorf("tail of a long line has %d bytes ending %q; want 2048 ending END", len(got), got[len(got)-3:])
		}
	})
}

func TestResetTerminationFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "containers", "node", "termination-log")
	if err := resetTerminationFile(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("previous run"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := resetTerminationFile(p); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 0 || st.Mode().Perm() != 0o666 {
		t.Errorf("after reset: size %d, mode %v; want empty and 0666", st.Size(), st.Mode().Perm())
	}
}
