package podnet

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialContext opens a connection from inside a network namespace: a socket belongs to the namespace of
// the thread that created it, so the dial happens on a locked thread that joins the namespace and
// returns to its own afterwards. The thread must survive: the kernel's parent-death signal of a pod
// process fires when the thread that forked it exits, and the runtime ends threads that stay locked.
func DialContext(ctx context.Context, netnsPath, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("cannot open own network namespace: %w", err)}
			return
		}
		defer unix.Close(own)
		fd, err := unix.Open(netnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("cannot open %s: %w", netnsPath, err)}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("cannot enter %s: %w", netnsPath, err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if unix.Setns(own, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: stay locked, and the runtime discards this thread rather than reuse it in the pod's namespace
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}
