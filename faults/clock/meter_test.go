package clock

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// freeze stops this whole process for d, as a starved machine does: a
// child sends SIGSTOP, then SIGCONT.
func freeze(t *testing.T, d time.Duration) {
	t.Helper()
	script := "kill -STOP " + strconv.Itoa(os.Getpid()) + "; sleep " + strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "; kill -CONT " + strconv.Itoa(os.Getpid())
	if err := exec.Command("sh", "-c", script).Run(); err != nil {
		t.Fatalf("freeze: %v", err)
	}
}

func TestDiscountingLeavesOutAFrozenProcess(t *testing.T) {
	const scale = 0.01
	m := StartMeter(0, 0)
	defer m.Stop()
	clk, err := Discounting(scale, m)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := New(scale)
	vStart, pStart := clk.Now(), plain.Now()
	freeze(t, 400*time.Millisecond)   // 40 s of scenario time at 0.01
	time.Sleep(10 * time.Millisecond) // the canary's next wake-up records the stall
	if got := m.Worst(); got < 300*time.Millisecond {
		t.Errorf("Worst = %v after a 400ms freeze, want >= 300ms", got)
	}
	if got := clk.Starved(); got < 300*time.Millisecond {
		t.Errorf("Starved = %v after a 400ms freeze, want >= 300ms", got)
	}
	// The plain clock counted the freeze; the discounting one did not.
	if got := plain.Since(pStart); got < 40*time.Second {
		t.Errorf("plain clock: %v passed over a 400ms freeze, want >= 40s", got)
	}
	if got := clk.Since(vStart); got > 20*time.Second {
		t.Errorf("discounting clock: %v passed over a 400ms freeze, want well under 40s", got)
	}
}

// A timer armed before a freeze fires when virtual time has reached its
// deadline, not when its wall time ran out.
func TestDiscountingTimerWaitsOutTheFreeze(t *testing.T) {
	m := StartMeter(0, 0)
	defer m.Stop()
	clk, _ := Discounting(0.01, m)
	start := clk.Now()
	tm := clk.NewTimer(30 * time.Second) // 300 ms of wall time
	freeze(t, 250*time.Millisecond)
	at := <-tm.C
	if got := at.Sub(start); got < 30*time.Second {
		t.Errorf("a 30s timer fired at +%v of virtual time", got)
	}
	if got := clk.Since(start); got < 30*time.Second {
		t.Errorf("Since after a 30s timer = %v", got)
	}
}

func TestDiscountingNowIsMonotonic(t *testing.T) {
	m := StartMeter(0, 0)
	defer m.Stop()
	clk, _ := Discounting(0.01, m)
	done := make(chan struct{})
	go func() { defer close(done); freeze(t, 100*time.Millisecond) }()
	last := clk.Now()
	deadline := time.Now().Add(400 * time.Millisecond)
	for time.Now().Before(deadline) {
		now := clk.Now()
		if now.Before(last) {
			t.Fatalf("Now went back by %v", last.Sub(now))
		}
		last = now
	}
	<-done
}

func TestDiscountingContexts(t *testing.T) {
	m := StartMeter(0, 0)
	defer m.Stop()
	clk, _ := Discounting(0.01, m)

	t.Run("deadline", func(t *testing.T) {
		start := clk.Now()
		ctx, cancel := clk.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		child, cancelChild := context.WithCancel(ctx)
		defer cancelChild()
		if _, ok := ctx.Deadline(); !ok {
			t.Fatal("no deadline")
		}
		<-child.Done()
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Errorf("Err = %v, child %v; want deadline exceeded for both", ctx.Err(), child.Err())
		}
		if got := clk.Since(start); got < 20*time.Second {
			t.Errorf("expired after %v of virtual time, want >= 20s", got)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := clk.WithTimeout(context.Background(), time.Hour)
		cancel()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("Err = %v, want canceled", ctx.Err())
		}
	})
	t.Run("parent", func(t *testing.T) {
		parent, cancelParent := context.WithCancel(context.Background())
		ctx, cancel := clk.WithTimeout(parent, time.Hour)
		defer cancel()
		cancelParent()
		<-ctx.Done()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("Err = %v, want canceled", ctx.Err())
		}
	})
	t.Run("inbound", func(t *testing.T) {
		// A server's context carries the client's (stretched) wall
		// deadline; given the client's virtual deadline, it expires in
		// virtual time, so a freeze does not expire it early.
		client, cancelClient := clk.WithTimeout(context.Background(), 20*time.Second)
		defer cancelClient()
		dl, _ := client.Deadline()
		at, ok := VirtualDeadline(client)
		if !ok {
			t.Fatal("no virtual deadline on a discounting clock's context")
		}
		wall, cancelWall := context.WithDeadline(context.Background(), dl) // as a socket passes it on
		defer cancelWall()
		ctx, cancel := clk.Inbound(wall, at)
		defer cancel()
		start := clk.Now()
		freeze(t, 400*time.Millisecond)
		if err := ctx.Err(); err != nil {
			t.Errorf("re-based context done (%v) with its virtual deadline not reached", err)
		}
		<-ctx.Done()
		if got := clk.Since(start); got < 15*time.Second {
			t.Errorf("re-based context expired after %v of virtual time, want about 20s", got)
		}
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Errorf("Err = %v, want deadline exceeded", ctx.Err())
		}
	})
	t.Run("nested", func(t *testing.T) {
		outer, cancelOuter := clk.WithTimeout(context.Background(), time.Second)
		defer cancelOuter()
		inner, cancelInner := clk.WithTimeout(outer, time.Hour)
		defer cancelInner()
		a, _ := VirtualDeadline(outer)
		b, _ := VirtualDeadline(inner)
		if !a.Equal(b) {
			t.Errorf("inner virtual deadline %v, want the outer's earlier %v", b, a)
		}
	})
}

func TestDiscountingTicker(t *testing.T) {
	m := StartMeter(0, 0)
	defer m.Stop()
	clk, _ := Discounting(0.01, m)
	start := clk.Now()
	tk := clk.NewTicker(time.Second)
	for range 5 {
		<-tk.C
	}
	tk.Stop()
	if got := clk.Since(start); got < 5*time.Second {
		t.Errorf("5 ticks of 1s in %v of virtual time", got)
	}
}

// Without a meter nothing changes: plain clocks keep wall timers.
func TestInboundWithoutMeterKeepsTheContext(t *testing.T) {
	c, _ := New(0.01)
	parent, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ctx, done := c.Inbound(parent, c.Now().Add(time.Second))
	defer done()
	if ctx != parent {
		t.Error("Inbound on a clock without a meter made a new context")
	}
}
