package server

import (
	"time"

	"github.com/fakecontainerd/fakecontainerd/shim"
)

// TimelineObserver sees, with their times on the server's clock, the two
// things a timeline of a stall needs from inside the server: each status
// lock held (tracked holds only, so lock_tracking must be on) and each
// in-process shim's rootfs unmount. The A/B runner draws them in its HTML
// report. Methods are called from the server's goroutines, under no server
// lock but possibly under a shim's process lock, and must be quick.
type TimelineObserver interface {
	StatusLockHeld(id, op string, from, to time.Time)
	Unmounted(id string, volatile bool, from time.Time, took time.Duration)
}

// unmountObserver composes the metrics' and the timeline's unmount hooks;
// nil if neither is set, so the shims skip the call.
func (c *criService) unmountObserver(tl TimelineObserver) shim.UnmountObserver {
	var m func(string, bool, time.Duration)
	if c.metrics != nil {
		m = c.metrics.unmounted
	}
	if tl == nil {
		return m
	}
	clk := c.clock
	return func(id string, volatile bool, took time.Duration) {
		if m != nil {
			m(id, volatile, took)
		}
		tl.Unmounted(id, volatile, clk.Now().Add(-took), took)
	}
}

// Blame is the lock tracker's report as `fakecontainerd blame` shows it,
// for code running next to the server (the A/B runner samples it); false
// when lock_tracking is off.
func (s *Server) Blame() (BlameReport, bool) {
	if s.cri.tracker == nil {
		return BlameReport{}, false
	}
	return s.cri.tracker.report(), true
}
