package cpu

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

func testClock(t *testing.T) *clock.Scaled {
	t.Helper()
	clk, err := clock.NewDiscounting(0.01)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clk.Stop)
	return clk
}

// TestRunQueue: n pieces of work started together on c cores each get
// min(1, c/n) of a core, so they all end when the cores have served the
// whole demand, never earlier.
func TestRunQueue(t *testing.T) {
	cases := []struct {
		name  string
		cores int
		jobs  int
		cost  time.Duration
		want  time.Duration // when the last one ends
	}{
		{"one job, one core", 1, 1, 200 * time.Millisecond, 200 * time.Millisecond},
		{"fewer jobs than cores", 4, 2, 200 * time.Millisecond, 200 * time.Millisecond},
		{"four jobs share one core", 1, 4, 200 * time.Millisecond, 800 * time.Millisecond},
		{"ten jobs on two cores", 2, 10, 200 * time.Millisecond, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := testClock(t)
			n := New(tc.cores, clk)
			start := clk.Now()
			var wg sync.WaitGroup
			ends := make([]time.Duration, tc.jobs)
			for i := range tc.jobs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := n.Run(context.Background(), "work", tc.cost); err != nil {
						t.Error(err)
					}
					ends[i] = clk.Since(start)
				}()
			}
			wg.Wait()
			for i, e := range ends {
				// Never before the cores could have served it; late by
				// no more than timer slack.
				if e < tc.want-10*time.Millisecond || e > tc.want+tc.want/2 {
					t.Errorf("job %d ended after %v, want about %v", i, e, tc.want)
				}
			}
			l := n.Load()
			if l.Runnable != 0 {
				t.Errorf("runnable after all ended = %d", l.Runnable)
			}
			served := time.Duration(tc.jobs) * tc.cost
			if l.Busy < served-served/10 || l.Busy > served+served/10 {
				t.Errorf("busy = %v, want about %v", l.Busy, served)
			}
		})
	}
}

// TestContentionSlowsSmallWork: a short piece of work behind a storm takes
// its share, not its cost: the relist's list behind the execs.
func TestContentionSlowsSmallWork(t *testing.T) {
	clk := testClock(t)
	n := New(1, clk)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 9 {
		go func() { _ = n.Run(ctx, "runc exec", time.Hour) }()
	}
	for n.Load().Runnable < 9 {
		_ = clk.Sleep(context.Background(), time.Millisecond)
	}
	if d := n.Describe("ListContainers"); d != "ListContainers waits for CPU: 1 cores busy, 9 runnable" {
		t.Errorf("Describe = %q", d)
	}
	start := clk.Now()
	if err := n.Run(context.Background(), "ListContainers", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// One core shared by ten: 50 ms of CPU takes 500 ms.
	if took := clk.Since(start); took < 490*time.Millisecond || took > 800*time.Millisecond {
		t.Errorf("50ms of work behind 9 others took %v, want about 500ms", took)
	}
}

// TestAbandoned: a context that ends takes the work off the run queue.
func TestAbandoned(t *testing.T) {
	clk := testClock(t)
	n := New(1, clk)
	ctx, cancel := clk.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := n.Run(ctx, "runc delete", time.Hour)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want deadline exceeded", err)
	}
	if l := n.Load(); l.Runnable != 0 {
		t.Errorf("runnable after abandon = %d", l.Runnable)
	}
	// The core is free again.
	start := clk.Now()
	if err := n.Run(context.Background(), "next", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := clk.Since(start); took > 200*time.Millisecond {
		t.Errorf("work after the abandoned one took %v", took)
	}
}

// TestOff: no node, no cost.
func TestOff(t *testing.T) {
	var n *Node
	if New(0, testClock(t)) != nil {
		t.Fatal("New(0) is not the model off")
	}
	if err := n.Run(context.Background(), "x", time.Hour); err != nil {
		t.Fatal(err)
	}
	if n.Describe("x") != "" || n.Cores() != 0 {
		t.Error("a nil node describes a wait")
	}
}
