package clock

import (
	"context"
	"math"
	"testing"
	"time"
)

func TestNewRejectsBadScale(t *testing.T) {
	for _, s := range []float64{0, -1, 1001} {
		if _, err := New(s); err == nil {
			t.Errorf("New(%v): want error", s)
		}
	}
}

func TestScaledConversions(t *testing.T) {
	c, err := New(0.01)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Wall(10 * time.Second); got != 100*time.Millisecond {
		t.Errorf("Wall(10s) = %v, want 100ms", got)
	}
	if got := c.Virtual(100 * time.Millisecond); got != 10*time.Second {
		t.Errorf("Virtual(100ms) = %v, want 10s", got)
	}
}

func TestScaledSleepAndSince(t *testing.T) {
	c, _ := New(0.01)
	start := c.Now()
	wallStart := time.Now()
	if err := c.Sleep(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if wall := time.Since(wallStart); wall > 2*time.Second {
		t.Errorf("a 5s virtual sleep at scale 0.01 took %v of wall time", wall)
	}
	if v := c.Since(start); v < 5*time.Second {
		t.Errorf("Since after a 5s sleep = %v, want >= 5s", v)
	}
}

func TestWithTimeoutIsScaled(t *testing.T) {
	c, _ := New(0.001)
	ctx, cancel := c.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dl, _ := ctx.Deadline()
	if left := time.Until(dl); left > time.Second {
		t.Errorf("1m virtual timeout at scale 0.001 leaves %v of wall time, want <= 60ms", left)
	}
}

// TestWallSaturates: a duration too long for the scale's conversion is
// capped, not wrapped to a negative one (which would expire at once).
func TestWallSaturates(t *testing.T) {
	c, err := New(1000)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Wall(math.MaxInt64 / 2); got != math.MaxInt64 {
		t.Errorf("Wall(MaxInt64/2) at scale 1000 = %v, want the longest duration", got)
	}
	slow, err := New(0.001)
	if err != nil {
		t.Fatal(err)
	}
	if got := slow.Virtual(math.MaxInt64 / 2); got != math.MaxInt64 {
		t.Errorf("Virtual(MaxInt64/2) at scale 0.001 = %v, want the longest duration", got)
	}
}
