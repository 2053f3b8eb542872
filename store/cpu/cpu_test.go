package cpu

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// testClock runs at 0.1, not the usual 0.01: work here starts and ends in
// goroutines woken by timers, and a wake-up late by a millisecond of wall
// time, which a busy machine gives without starving the whole process, is
// 100 ms of scenario time at 0.01.
func testClock(t *testing.T) *clock.Scaled {
	t.Helper()
	clk, err := clock.NewDiscounting(0.1)
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
			// No job ends before its own cost could be served, the last
			// not before the cores could have served the whole demand (a
			// job that starts late leaves the others more of a core, so
			// they may end earlier than the last), and none much later.
			const slack = 10 * time.Millisecond
			var last time.Duration
			for i, e := range ends {
				last = max(last, e)
				if e < tc.cost-slack || e > tc.want+tc.want/2 {
					t.Errorf("job %d ended after %v, want between %v and %v", i, e, tc.cost, tc.want+tc.want/2)
				}
			}
			if last < tc.want-slack {
				t.Errorf("the last job ended after %v, want at least %v", last, tc.want)
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
