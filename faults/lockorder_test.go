package faults

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPercentFiringDoesNotDeadlockAdmin: firing a percent term rolls the
// injector's random number while the fault's own lock is held; List, Clear
// and Release take the injector's lock and then each fault's. Were the
// roll taken under the injector's lock, the two orders would deadlock
// (found by the soak: the admin API's DELETE /v1/faults hung, and so did
// every call at the fault's point).
func TestPercentFiringDoesNotDeadlockAdmin(t *testing.T) {
	in, _ := newTestInjector(t, 0.001)
	if _, err := in.Add("cri.Version.before", Selector{}, "50%delay(1ms, 1ms)", "test"); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				_ = in.Fire(context.Background(), "cri.Version.before", Target{})
			}
		})
	}
	wg.Go(func() {
		for !stop.Load() {
			_ = in.List()
			_, _ = in.Release()
		}
	})
	done := make(chan struct{})
	go func() {
		time.Sleep(500 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Fire and List/Release deadlocked")
	}
	if _, err := in.Clear(); err != nil {
		t.Fatal(err)
	}
}
