// Package incident is incident 1's scripted workload and the runtime
// probe both real-kubelet suites use: the standalone one (e2e/kubelet's
// TestIncident1) and the cluster one (e2e/cluster), so the two run the
// same incident.
//
// The "dying" pod's container "work" finishes normally (exit 0)
// DyingExitAfter after it starts, with 2700 MiB dirty in its rootfs and a
// 10 MiB/s disk: without volatile, the unmount in the shim's Delete takes
// UnmountTime (270 s), longer than two back-to-back 2 min
// UpdateContainerResources calls and short of a third, so a run has
// exactly one unhealthy spell. Nothing is scaled: kubelet's PLEG threshold
// (3 min) and runtime request timeout (2 min) are constants.
package incident

import (
	"context"
	"sync"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	// DyingExitAfter is when the dying container exits after it starts.
	DyingExitAfter = 40 * time.Second
	// UnmountTime is dirty bytes / disk throughput of the dying container.
	UnmountTime = 270 * time.Second
	// ObserveFor is how long after the exit a run watches kubelet: the
	// whole unmount plus time for kubelet to recover and settle.
	ObserveFor = UnmountTime + 90*time.Second
	// Container is the dying pod's container name, which the annotations
	// below address.
	Container = "work"
)

// DyingAnnotations script the dying pod's container: kubelet copies pod
// annotations to the sandbox, and fakecontainerd applies
// "<key>.<container>" to that container.
func DyingAnnotations() map[string]string {
	return map[string]string{
		"fakecontainerd.io/exit-after." + Container:      DyingExitAfter.String(),
		"fakecontainerd.io/exit-code." + Container:       "0",
		"fakecontainerd.io/write-rate." + Container:      "0",
		"fakecontainerd.io/dirty-bytes." + Container:     "2700MiB",
		"fakecontainerd.io/dirty-limit." + Container:     "4GiB",
		"fakecontainerd.io/disk-throughput." + Container: "10MiB",
	}
}

// Call is one CRI call a harness made: on which container (empty for
// lists), when, how long, and its error.
type Call struct {
	ID    string
	Start time.Time
	Took  time.Duration
	Err   error
}

// Lister calls ListContainers every second, each call in its own goroutine
// with a long deadline, to time when the runtime's list stalls and for
// how long. Kubelet's PLEG makes the same call; this one only measures.
type Lister struct {
	CRI cri.RuntimeServiceClient

	mu    sync.Mutex
	calls []Call
}

// Run lists until ctx ends; wg is done once every call has returned.
func (l *Lister) Run(ctx context.Context, wg *sync.WaitGroup) {
	Every(ctx, wg, time.Second, func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
			defer cancel()
			start := time.Now()
			_, err := l.CRI.ListContainers(cctx, &cri.ListContainersRequest{})
			if ctx.Err() != nil {
				return
			}
			l.mu.Lock()
			l.calls = append(l.calls, Call{Start: start, Took: time.Since(start), Err: err})
			l.mu.Unlock()
		}()
	})
}

// Every calls f once per period, at a time.Ticker's pace, from a goroutine
// wg tracks, until ctx ends.
func Every(ctx context.Context, wg *sync.WaitGroup, period time.Duration, f func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(period)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			f()
		}
	}()
}

// Calls is every list so far.
func (l *Lister) Calls() []Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Call(nil), l.calls...)
}

// Stalls are the calls that took longer than threshold: when the first
// started, when the last ended, the longest, and how many.
func Stalls(calls []Call, threshold time.Duration) (first, lastEnd time.Time, longest time.Duration, n int) {
	for _, c := range calls {
		if c.Took <= threshold {
			continue
		}
		n++
		if first.IsZero() || c.Start.Before(first) {
			first = c.Start
		}
		if end := c.Start.Add(c.Took); end.After(lastEnd) {
			lastEnd = end
		}
		longest = max(longest, c.Took)
	}
	return first, lastEnd, longest, n
}
