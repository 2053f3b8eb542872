package store

import "sync"

// StopCh is a close-once channel that tells waiters an object has stopped
// (a container exited, a sandbox stopped). Stop may be called from several
// paths (exit handling, stop, recovery), so closing is guarded by a Once.
type StopCh struct {
	ch   chan struct{}
	once sync.Once
}

// NewStopCh returns an open StopCh.
func NewStopCh() *StopCh {
	return &StopCh{ch: make(chan struct{})}
}

// Stop closes the channel; later calls do nothing.
func (s *StopCh) Stop() {
	s.once.Do(func() { close(s.ch) })
}

// Stopped returns a channel that is closed once Stop has been called.
func (s *StopCh) Stopped() <-chan struct{} {
	return s.ch
}
