//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package chain

import "os"

// unlockFile is a no-op where bbolt does not use flock.
func unlockFile(*os.File) {}
