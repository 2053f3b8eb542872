// Package cpu models a node's CPUs the way the kernel's fair scheduler
// shares them: a fixed number of cores and every piece of runnable work on
// the node (a runc exec, a runc delete, containerd handling a CRI call)
// competing for them. With n runnable pieces on c cores each progresses at
// min(1, c/n) of a core: processor sharing, CFS's ideal. So contention
// emerges: a storm of execs makes every other piece of work, a relist's
// ListContainers included, take longer, by as much as the run queue says.
//
// Work costs CPU time, not wall time: a piece of work that needs 17 ms of
// CPU takes 17 ms on an idle core, 170 ms behind nine others on one core.
// Time is the project clock's; no real CPU is burnt.
//
// A nil *Node is the model switched off: every Run returns at once, which
// is what the fake did before the model (and what every scenario without
// a [server.cpu] table still gets).
package cpu

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// done is how little work left counts as finished: clock rounding must
// not leave a job a nanosecond short forever.
const done = float64(time.Microsecond)

// Node is a node's cores and their run queue.
type Node struct {
	clk   clock.Clock
	cores int

	mu   sync.Mutex
	jobs []*job
	// last is when the jobs' remaining work was last brought up to date.
	last time.Time
	// timer fires at the next completion; gen tells a stale firing from
	// the current one.
	timer *clock.Timer
	gen   uint64
	// busy is the CPU time served so far (core-time), since the start.
	busy  time.Duration
	start time.Time
}

type job struct {
	what string
	left float64 // nanoseconds of CPU still needed
	done chan struct{}
}

// New returns a node of cores cores on clk; cores <= 0 is the model off
// (nil).
func New(cores int, clk clock.Clock) *Node {
	if cores <= 0 {
		return nil
	}
	now := clk.Now()
	return &Node{clk: clk, cores: cores, last: now, start: now}
}

// Cores is the node's core count (0 for a nil Node).
func (n *Node) Cores() int {
	if n == nil {
		return 0
	}
	return n.cores
}

// Run blocks until cost of CPU time has been served to the work (named by
// what, for Describe), or ctx ends first: the work is then abandoned, as a
// process killed with its context stops using the CPU, and Run returns
// ctx's error. A nil Node or a cost <= 0 returns at once.
func (n *Node) Run(ctx context.Context, what string, cost time.Duration) error {
	if n == nil || cost <= 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &job{what: what, left: float64(cost), done: make(chan struct{})}
	n.mu.Lock()
	n.advanceLocked(n.clk.Now())
	n.jobs = append(n.jobs, j)
	n.scheduleLocked()
	n.mu.Unlock()
	select {
	case <-j.done:
		return nil
	case <-ctx.Done():
		n.mu.Lock()
		n.advanceLocked(n.clk.Now())
		finished := n.removeLocked(j)
		n.scheduleLocked()
		n.mu.Unlock()
		if finished {
			return nil
		}
		return ctx.Err()
	}
}

// rateLocked is each runnable job's share of a core.
func (n *Node) rateLocked() float64 {
	if len(n.jobs) <= n.cores {
		return 1
	}
	return float64(n.cores) / float64(len(n.jobs))
}

// advanceLocked serves the jobs the CPU time between n.last and now, and
// ends those that got all they needed.
func (n *Node) advanceLocked(now time.Time) {
	dt := now.Sub(n.last)
	if dt <= 0 {
		return
	}
	n.last = now
	if len(n.jobs) == 0 {
		return
	}
	rate := n.rateLocked()
	kept := n.jobs[:0]
	for _, j := range n.jobs {
		// A late timer must not count more than the job needed.
		served := min(j.left, float64(dt)*rate)
		n.busy += time.Duration(served)
		j.left -= served
		if j.left <= done {
			close(j.done)
			continue
		}
		kept = append(kept, j)
	}
	clear(n.jobs[len(kept):])
	n.jobs = kept
}

// removeLocked drops an abandoned job; it reports whether the job had
// finished already.
func (n *Node) removeLocked(j *job) bool {
	for i, o := range n.jobs {
		if o == j {
			n.jobs = append(n.jobs[:i], n.jobs[i+1:]...)
			return false
		}
	}
	return true
}

// scheduleLocked sets the timer for the next job to finish at today's
// rate; any arrival or departure reschedules.
func (n *Node) scheduleLocked() {
	n.gen++
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	if len(n.jobs) == 0 {
		return
	}
	least := n.jobs[0].left
	for _, j := range n.jobs[1:] {
		least = min(least, j.left)
	}
	wait := time.Duration(least/n.rateLocked()) + 1
	gen := n.gen
	n.timer = n.clk.AfterFunc(wait, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if gen != n.gen {
			return
		}
		n.timer = nil
		n.advanceLocked(n.clk.Now())
		n.scheduleLocked()
	})
}

// Load is the run queue at one instant.
type Load struct {
	Cores, Runnable int
	// Busy is the CPU time served since the node started (core-time);
	// Since is how long ago that was.
	Busy, Since time.Duration
}

// Load reads the run queue now.
func (n *Node) Load() Load {
	if n == nil {
		return Load{}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.clk.Now()
	n.advanceLocked(now)
	return Load{Cores: n.cores, Runnable: len(n.jobs), Busy: n.busy, Since: now.Sub(n.start)}
}

// Utilisation is the mean share of the cores that was busy since the
// start, 0..1.
func (l Load) Utilisation() float64 {
	if l.Since <= 0 || l.Cores == 0 {
		return 0
	}
	return float64(l.Busy) / (float64(l.Since) * float64(l.Cores))
}

// Contended reports whether work would wait for a core now.
func (l Load) Contended() bool { return l.Runnable >= l.Cores && l.Cores > 0 }

// Describe says what work named what waits for, as blame reads it:
// "runc delete waits for CPU: 2 cores busy, 37 runnable". Empty when the
// model is off or a core is free.
func (n *Node) Describe(what string) string {
	l := n.Load()
	if !l.Contended() {
		return ""
	}
	return fmt.Sprintf("%s waits for CPU: %d cores busy, %d runnable", what, l.Cores, l.Runnable)
}

// BusySince is the share of the cores busy between an earlier reading and
// this one, 0..1.
func (l Load) BusySince(earlier Load) float64 {
	d := Load{Cores: l.Cores, Busy: l.Busy - earlier.Busy, Since: l.Since - earlier.Since}
	return d.Utilisation()
}
