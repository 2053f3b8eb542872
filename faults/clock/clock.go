// Package clock is the one source of time for fakecontainerd.
//
// Every delay, deadline, period and timestamp in the server, the shims and
// the scenario drivers goes through a Clock, so a scenario written in
// real-world durations can run at 1/100 speed in a test and at full speed
// against a kubelet. Durations handed to a Clock are always in the
// scenario's real-world ("virtual") time; the Clock converts them to wall
// time for the timers it creates. Deadlines that cross a socket (gRPC,
// ttrpc) are ordinary wall-clock deadlines, so they need no conversion.
//
// It lives under faults/ because the time scale is what makes injected
// delays and the deadlines they collide with scenario-controlled, and faults/
// is the package everyone may import.
package clock

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Clock is the injectable time source.
type Clock interface {
	// Now is the current virtual time.
	Now() time.Time
	// Since is the virtual time elapsed since t (a value from Now).
	Since(t time.Time) time.Duration
	// Scale is wall seconds per virtual second (1 = real time, 0.01 = 100x faster).
	Scale() float64
	// Origin is the wall time at which virtual and wall time coincide; two
	// processes with the same scale and origin agree on Now (unless a
	// Meter discounts starvation, which is per process).
	Origin() time.Time
	// Wall converts a virtual duration into the wall duration it takes
	// when the process is not starved.
	Wall(d time.Duration) time.Duration
	// Virtual converts a wall duration into virtual time.
	Virtual(d time.Duration) time.Duration
	// NewTimer fires after the virtual duration d.
	NewTimer(d time.Duration) *Timer
	// After is NewTimer(d).C.
	After(d time.Duration) <-chan time.Time
	// AfterFunc calls f in its own goroutine after the virtual duration d;
	// the Timer's C is nil.
	AfterFunc(d time.Duration, f func()) *Timer
	// NewTicker ticks every virtual d.
	NewTicker(d time.Duration) *Ticker
	// Sleep waits for the virtual duration d or until ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
	// WithTimeout is context.WithTimeout with a virtual duration.
	WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc)
	// Inbound gives a call that came in over a socket (gRPC, ttrpc) the
	// deadline at, a virtual instant its client's clock sent along
	// (package deadline carries it). Deadlines cross sockets as wall
	// durations, which know nothing of the starvation a discounting clock
	// leaves out; with one, the server side of a call then expires at the
	// scenario instant its client meant. The call's wall deadline is
	// dropped and its cancellation kept. Other clocks, or a zero at,
	// return ctx.
	Inbound(ctx context.Context, at time.Time) (context.Context, context.CancelFunc)
}

// Scaled is a Clock whose virtual time runs 1/scale times as fast as wall
// time, starting from the wall time at which it was made. With scale 1 it is
// the real clock. With a Meter (Discounting), the wall time in which the
// process was starved is left out of virtual time.
type Scaled struct {
	scale  float64
	origin time.Time
	meter  *Meter
	// starved0 is the meter's count at origin.
	starved0 time.Duration
	ownMeter bool
}

// Real returns the unscaled clock.
func Real() *Scaled { return &Scaled{scale: 1, origin: time.Now()} }

// New returns a clock with the given time scale. A scale must be in (0, 1000].
func New(scale float64) (*Scaled, error) { return NewAt(scale, time.Now()) }

// NewAt returns a clock with the given scale whose virtual time equals wall
// time at origin; a shim process uses its daemon's origin.
func NewAt(scale float64, origin time.Time) (*Scaled, error) {
	if !(scale > 0) || scale > 1000 {
		return nil, fmt.Errorf("time scale %v: must be greater than 0 and at most 1000", scale)
	}
	return &Scaled{scale: scale, origin: origin}, nil
}

// Discounting returns a clock with the given scale, starting now, whose
// virtual time stops while m counts starvation. It is for a process that
// holds both ends of every call it times (the scenario runner: driver,
// server and in-process shims); a process-mode shim or an outside client
// keeps wall time and would disagree with it.
func Discounting(scale float64, m *Meter) (*Scaled, error) {
	c, err := New(scale)
	if err != nil {
		return nil, err
	}
	c.meter = m
	c.origin, c.starved0 = m.read()
	return c, nil
}

// NewDiscounting is Discounting on a meter of the clock's own, which Stop
// ends: for a test harness that owns both ends of its calls.
func NewDiscounting(scale float64) (*Scaled, error) {
	m := StartMeter(0, 0)
	c, err := Discounting(scale, m)
	if err != nil {
		m.Stop()
		return nil, err
	}
	c.ownMeter = true
	return c, nil
}

// Stop ends the clock's own meter (NewDiscounting); the clock then keeps
// the starvation it counted. Other clocks ignore it.
func (c *Scaled) Stop() {
	if c.ownMeter {
		c.meter.Stop()
	}
}

// Starved is the wall time this clock has left out since its origin.
func (c *Scaled) Starved() time.Duration {
	if c.meter == nil {
		return 0
	}
	return c.meter.Starved() - c.starved0
}

func (c *Scaled) Scale() float64 { return c.scale }

func (c *Scaled) Origin() time.Time { return c.origin }

func (c *Scaled) Now() time.Time {
	if c.meter == nil {
		if c.scale == 1 {
			return time.Now()
		}
		return c.origin.Add(c.Virtual(time.Since(c.origin)))
	}
	now, starved := c.meter.read()
	return c.origin.Add(c.Virtual(now.Sub(c.origin) - (starved - c.starved0)))
}

func (c *Scaled) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

func (c *Scaled) Wall(d time.Duration) time.Duration {
	if c.scale == 1 || d <= 0 {
		return d
	}
	return saturate(float64(d) * c.scale)
}

// saturate converts to a Duration, capping what a Duration cannot hold (a
// float64 conversion out of range is undefined, negative on amd64: a huge
// timeout would expire at once).
func saturate(f float64) time.Duration {
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(f)
}

func (c *Scaled) Virtual(d time.Duration) time.Duration {
	if c.scale == 1 {
		return d
	}
	return saturate(float64(d) / c.scale)
}

func (c *Scaled) NewTimer(d time.Duration) *Timer {
	if c.meter == nil {
		t := time.NewTimer(c.Wall(d))
		return &Timer{C: t.C, t: t}
	}
	ch := make(chan time.Time, 1)
	t := &Timer{C: ch}
	t.v = c.afterFunc(d, func(now time.Time) {
		select {
		case ch <- now:
		default:
		}
	})
	return t
}

func (c *Scaled) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).C }

func (c *Scaled) AfterFunc(d time.Duration, f func()) *Timer {
	if c.meter == nil {
		return &Timer{t: time.AfterFunc(c.Wall(d), f)}
	}
	return &Timer{v: c.afterFunc(d, func(time.Time) { f() })}
}

func (c *Scaled) NewTicker(d time.Duration) *Ticker {
	w := c.Wall(d)
	if w <= 0 {
		w = time.Nanosecond
	}
	if c.meter == nil {
		t := time.NewTicker(w)
		return &Ticker{C: t.C, t: t}
	}
	if d <= 0 {
		d = time.Nanosecond
	}
	ch := make(chan time.Time, 1)
	tk := &Ticker{C: ch}
	next := c.Now().Add(d)
	var tick func(time.Time)
	tick = func(now time.Time) {
		select {
		case ch <- now:
		default: // as time.Ticker: a tick nobody took is dropped
		}
		for !next.After(now) {
			next = next.Add(d)
		}
		tk.mu.Lock()
		defer tk.mu.Unlock()
		if !tk.stopped {
			tk.v = c.afterFunc(next.Sub(now), tick)
		}
	}
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tk.v = c.afterFunc(d, tick)
	return tk
}

func (c *Scaled) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Scaled) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if c.meter == nil {
		return context.WithTimeout(ctx, c.Wall(d))
	}
	return c.withDeadline(ctx, ctx, c.Now().Add(d), false)
}

func (c *Scaled) Inbound(ctx context.Context, at time.Time) (context.Context, context.CancelFunc) {
	if c.meter == nil || at.IsZero() {
		return ctx, func() {}
	}
	// A server's deadline falls a transit later than its client's (gRPC
	// sends the time left; the server counts it from receipt), so at the
	// deadline the client gives up first and sees its own
	// DeadlineExceeded, not the server's error. Both ends here read one
	// clock, so the transit is added.
	return c.withDeadline(context.WithoutCancel(ctx), ctx, at.Add(c.Virtual(inboundTransit)), true)
}

// inboundTransit is the wall time a server's deadline trails its client's.
const inboundTransit = time.Millisecond

// VirtualDeadline is the virtual deadline of ctx, if a discounting clock's
// WithTimeout (or Inbound) set one on it or on a context it derives from:
// what a client sends along with a call for the server's Inbound.
func VirtualDeadline(ctx context.Context) (time.Time, bool) {
	at, ok := ctx.Value(virtualDeadlineKey{}).(time.Time)
	return at, ok
}

type virtualDeadlineKey struct{}

// Timer is a one-shot timer on a Clock; C receives the virtual time at
// which it fired.
type Timer struct {
	C <-chan time.Time
	t *time.Timer
	v *virtualTimer
}

// Stop prevents the timer from firing; it reports whether it stopped it.
func (t *Timer) Stop() bool {
	if t.t != nil {
		return t.t.Stop()
	}
	return t.v.stop()
}

// Ticker ticks on a Clock; C receives the virtual time of each tick.
type Ticker struct {
	C <-chan time.Time
	t *time.Ticker

	mu      sync.Mutex
	stopped bool
	v       *virtualTimer
}

// Stop turns the ticker off.
func (t *Ticker) Stop() {
	if t.t != nil {
		t.t.Stop()
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	t.v.stop()
}

// minRearm keeps a timer that wakes while virtual time stands still (the
// process was starved and the meter's canary has not run yet) from
// spinning: it looks again a little later.
const minRearm = 50 * time.Microsecond

// virtualTimer calls f once the clock's virtual time has reached at. It
// is armed for the wall time that takes when nothing starves the process;
// if it wakes early in virtual time, because part of that wall time was
// discounted, it arms itself again for the rest.
type virtualTimer struct {
	c  *Scaled
	at time.Time
	f  func(now time.Time)

	mu      sync.Mutex
	t       *time.Timer
	stopped bool
	fired   bool
}

func (c *Scaled) afterFunc(d time.Duration, f func(now time.Time)) *virtualTimer {
	v := &virtualTimer{c: c, at: c.Now().Add(d), f: f}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.t = time.AfterFunc(c.Wall(d), v.check)
	return v
}

func (v *virtualTimer) check() {
	now := v.c.Now()
	v.mu.Lock()
	if v.stopped {
		v.mu.Unlock()
		return
	}
	if rest := v.at.Sub(now); rest > 0 {
		v.t.Reset(max(v.c.Wall(rest), minRearm))
		v.mu.Unlock()
		return
	}
	v.fired = true
	v.mu.Unlock()
	v.f(now)
}

func (v *virtualTimer) stop() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	was := !v.stopped && !v.fired
	v.stopped = true
	v.t.Stop()
	return was
}

// deadlineCtx is a context whose deadline is a virtual instant. Its Done
// channel is its own (not a context package cancelCtx's), so contexts
// derived from it take their error from its Err: DeadlineExceeded when
// the virtual deadline passed, as with context.WithDeadline.
type deadlineCtx struct {
	values context.Context // Value lookups
	clk    *Scaled
	at     time.Time // virtual deadline
	parent context.Context

	done chan struct{}

	mu         sync.Mutex
	err        error
	afters     map[*afterFunc]struct{}
	timer      *virtualTimer
	stopParent func() bool
}

type afterFunc struct{ f func() }

// withDeadline returns a context expiring at the virtual instant at, with
// values from values, cancelled with parent's error when parent is done;
// with onlyCancel, only when parent was cancelled (its own deadline, a wall
// one, is ignored).
func (c *Scaled) withDeadline(values, parent context.Context, at time.Time, onlyCancel bool) (context.Context, context.CancelFunc) {
	if outer, ok := VirtualDeadline(values); ok && outer.Before(at) {
		at = outer
	}
	d := &deadlineCtx{values: values, clk: c, at: at, parent: parent, done: make(chan struct{})}
	follow := func() {
		if err := parent.Err(); !onlyCancel || errors.Is(err, context.Canceled) {
			d.cancel(err)
		}
	}
	if parent.Err() != nil {
		follow()
		if d.Err() != nil {
			return d, func() {}
		}
	}
	rest := at.Sub(c.Now())
	if rest <= 0 {
		d.cancel(context.DeadlineExceeded)
		return d, func() {}
	}
	d.mu.Lock()
	d.stopParent = context.AfterFunc(parent, follow)
	d.timer = c.afterFunc(rest, func(time.Time) { d.cancel(context.DeadlineExceeded) })
	d.mu.Unlock()
	return d, func() { d.cancel(context.Canceled) }
}

func (d *deadlineCtx) cancel(err error) {
	d.mu.Lock()
	if d.err != nil {
		d.mu.Unlock()
		return
	}
	d.err = err
	close(d.done)
	afters := d.afters
	d.afters = nil
	if d.timer != nil {
		d.timer.stop()
	}
	if d.stopParent != nil {
		d.stopParent()
	}
	d.mu.Unlock()
	for a := range afters {
		go a.f()
	}
}

// Deadline is what a socket sends on: the wall time left before the
// virtual deadline if the process is not starved from now on, stretched
// (socketWall) so that the other end's wall timer, which knows nothing of
// starvation, never ends the call before the virtual deadline. The virtual
// deadline itself travels beside it (VirtualDeadline, package deadline).
func (d *deadlineCtx) Deadline() (time.Time, bool) {
	now := time.Now()
	rest := d.clk.Wall(max(d.at.Sub(d.clk.Now()), 0))
	if pd, ok := d.values.Deadline(); ok {
		rest = min(rest, max(pd.Sub(now), 0))
	}
	return now.Add(socketWall(rest)), true
}

// socketWall stretches the wall time left before a virtual deadline by
// more than the starvation a call could meet.
func socketWall(rest time.Duration) time.Duration {
	const stretch, slack = 100, time.Minute
	return saturate(float64(rest)*stretch + float64(slack))
}

func (d *deadlineCtx) Done() <-chan struct{} { return d.done }

func (d *deadlineCtx) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *deadlineCtx) Value(key any) any {
	if _, ok := key.(virtualDeadlineKey); ok {
		return d.at
	}
	return d.values.Value(key)
}

// AfterFunc lets the context package propagate cancellation to derived
// contexts without a goroutine each.
func (d *deadlineCtx) AfterFunc(f func()) func() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	if d.afters == nil {
		d.afters = make(map[*afterFunc]struct{})
	}
	d.afters[a] = struct{}{}
	return func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		_, ok := d.afters[a]
		delete(d.afters, a)
		return ok
	}
}

func (d *deadlineCtx) String() string { return fmt.Sprintf("clock.WithDeadline(%v)", d.at) }
