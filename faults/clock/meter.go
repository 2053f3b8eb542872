package clock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Meter measures starvation: wall time during which this process wanted
// the CPU and did not get it. A canary goroutine sleeps one tick at a time;
// how late it wakes up, beyond a small allowance for ordinary timer slack,
// is time in which nothing of the process ran (the Go scheduler runs a due
// timer on whichever thread is running, so a late canary means no thread
// was). A Clock built on a Meter leaves that time out of scenario time, so
// at a time scale of 0.01 a 100 ms stall of the machine no longer reads as
// 10 s of scenario time, and a scenario's figures depend on its mechanism
// rather than on how busy the machine was.
//
// Between two wake-ups the time by which the canary is overdue counts as
// starved already, so a reading of the clock taken just after a stall, before
// the canary has run, is not ahead of the readings taken after it: starved
// time grows continuously and scenario time never goes backwards.
type Meter struct {
	tick  time.Duration
	slack time.Duration
	base  time.Time // wall origin of the offsets below

	// state is replaced whole on every wake-up, so a reader sees the last
	// wake-up and the starvation counted up to it from one moment.
	state atomic.Pointer[meterState]
	worst atomic.Int64 // longest single stall, wall ns

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

type meterState struct {
	wake    time.Duration // last wake-up, wall time since base
	starved time.Duration // counted up to wake
}

// Defaults for StartMeter: a canary every millisecond costs a few
// microseconds of CPU per tick; an allowance of 250 µs is above the timer
// slack of an idle Linux machine, so an idle run discounts (almost) nothing.
const (
	DefaultMeterTick  = time.Millisecond
	DefaultMeterSlack = 250 * time.Microsecond
)

// StartMeter starts a canary waking every tick; lateness beyond slack is
// counted as starvation. Zero values take the defaults. Stop ends it.
func StartMeter(tick, slack time.Duration) *Meter {
	if tick <= 0 {
		tick = DefaultMeterTick
	}
	if slack <= 0 {
		slack = DefaultMeterSlack
	}
	m := &Meter{tick: tick, slack: slack, base: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	m.state.Store(&meterState{})
	go m.run()
	return m
}

func (m *Meter) run() {
	defer close(m.done)
	t := time.NewTimer(m.tick)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		now := time.Since(m.base)
		st := m.state.Load()
		late := now - st.wake - m.tick - m.slack
		next := &meterState{wake: now, starved: st.starved}
		if late > 0 {
			next.starved += late
			if int64(late) > m.worst.Load() {
				m.worst.Store(int64(late))
			}
		}
		m.state.Store(next)
		t.Reset(m.tick)
	}
}

// Stop ends the canary; the figures keep their last values.
func (m *Meter) Stop() {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
}

// read returns the wall time now and the starvation counted up to it,
// including the canary's current lateness. The state is loaded before the
// time is taken: a wake-up stored after that time would count lateness the
// reading has not reached, and scenario time would step back.
func (m *Meter) read() (time.Time, time.Duration) {
	st := m.state.Load()
	now := time.Now()
	select {
	case <-m.done:
		return now, st.starved
	default:
	}
	overdue := now.Sub(m.base) - st.wake - m.tick - m.slack
	return now, st.starved + max(overdue, 0)
}

// Starved is the wall time counted as starvation so far.
func (m *Meter) Starved() time.Duration {
	_, s := m.read()
	return s
}

// Worst is the longest single stall seen (wall time).
func (m *Meter) Worst() time.Duration { return time.Duration(m.worst.Load()) }
