//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package chain

import (
	"os"
	"syscall"
)

// unlockFile drops bbolt's flock on f. Needed when bbolt panics inside Open:
// its mmap keeps the open file description, and with it the lock, alive after
// f is closed, so a later open in this process would wait for the lock.
func unlockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
