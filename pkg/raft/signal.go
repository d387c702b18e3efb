package raft

import "sync"

// Signal wakes any number of waiters at the next change. It is level-triggered: a waiter that was busy
// reads the current state when it comes back, so no change is lost by coalescing.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewSignal returns a Signal with no change pending.
func NewSignal() *Signal { return &Signal{ch: make(chan struct{})} }

// Changed returns a channel closed at the next Notify.
func (s *Signal) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// Notify wakes every waiter.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}
