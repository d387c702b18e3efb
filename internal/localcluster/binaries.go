package localcluster

import (
	"context"
	"fmt"
	"os/exec"
)

// BuildLocalclusterBinary builds cmd/localcluster of this checkout into out, for test suites that want
// Config.LocalclusterBinary to match the code under test rather than whatever bin/localcluster holds.
func BuildLocalclusterBinary(ctx context.Context, out string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/localcluster")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cannot build cmd/localcluster: %w\n%s", err, b)
	}
	return nil
}
