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
	"fmt"
	"math"
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
	// processes with the same scale and origin agree on Now.
	Origin() time.Time
	// Wall converts a virtual duration into the wall duration it takes.
	Wall(d time.Duration) time.Duration
	// Virtual converts a wall duration into virtual time.
	Virtual(d time.Duration) time.Duration
	// NewTimer fires after the virtual duration d.
	NewTimer(d time.Duration) *time.Timer
	// After is NewTimer(d).C.
	After(d time.Duration) <-chan time.Time
	// NewTicker ticks every virtual d.
	NewTicker(d time.Duration) *time.Ticker
	// Sleep waits for the virtual duration d or until ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
	// WithTimeout is context.WithTimeout with a virtual duration.
	WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc)
}

// Scaled is a Clock whose virtual time runs 1/scale times as fast as wall
// time, starting from the wall time at which it was made. With scale 1 it is
// the real clock.
type Scaled struct {
	scale  float64
	origin time.Time
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

func (c *Scaled) Scale() float64 { return c.scale }

func (c *Scaled) Origin() time.Time { return c.origin }

func (c *Scaled) Now() time.Time {
	if c.scale == 1 {
		return time.Now()
	}
	return c.origin.Add(c.Virtual(time.Since(c.origin)))
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

func (c *Scaled) NewTimer(d time.Duration) *time.Timer { return time.NewTimer(c.Wall(d)) }

func (c *Scaled) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).C }

func (c *Scaled) NewTicker(d time.Duration) *time.Ticker {
	w := c.Wall(d)
	if w <= 0 {
		w = time.Nanosecond
	}
	return time.NewTicker(w)
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
	return context.WithTimeout(ctx, c.Wall(d))
}
