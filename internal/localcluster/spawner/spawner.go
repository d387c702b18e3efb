// Package spawner starts child processes that must die with their parent process. Linux delivers the
// parent-death signal (PR_SET_PDEATHSIG, SysProcAttr.Pdeathsig) when the *thread* that forked the child
// exits, not the process, and the Go runtime ends any thread whose goroutine exits while locked to it.
// Forking from one goroutine locked to its thread for the life of the process makes the signal mean
// what callers want: "the parent process is gone".
package spawner

import (
	"os/exec"
	"runtime"
	"sync"
)

type request struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	once     sync.Once
	requests chan request
)

// Start starts cmd from the spawner's dedicated thread. Use it for every command whose SysProcAttr sets
// Pdeathsig.
func Start(cmd *exec.Cmd) error {
	once.Do(func() {
		requests = make(chan request)
		go func() {
			// Never unlocked and never returns: this thread lives as long as the process.
			runtime.LockOSThread()
			for r := range requests {
				r.done <- r.cmd.Start()
			}
		}()
	})
	r := request{cmd: cmd, done: make(chan error, 1)}
	requests <- r
	return <-r.done
}
