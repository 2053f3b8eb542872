package shim

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// containerd's shim runtime settings (runtime/v2/shim/shim.go setRuntime,
// v1.6): a shim collects at 40% heap growth instead of Go's 100%, hands
// freed memory back to the OS every 30 s, and runs on 2 Ps unless
// GOMAXPROCS says otherwise.
const (
	GCPercent         = 40
	FreeOSMemoryEvery = 30 * time.Second
	shimMaxProcs      = 2
)

// TuneRuntime gives this process containerd's shim runtime settings until
// ctx ends: the GC percent (unless GOGC is set: a user's GOGC wins, so a
// run can show the heap untuned) and the periodic FreeOSMemory. A
// process-mode shim also takes the GOMAXPROCS default (maxProcs); in-process
// shims share the server's Ps and leave them alone. The period is wall
// time, as containerd's time.Tick: a scaled clock would collect 100 times
// as often at time scale 0.01 and free nothing more.
func TuneRuntime(ctx context.Context, maxProcs bool) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if maxProcs && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(shimMaxProcs)
	}
	t := clock.Real().NewTicker(FreeOSMemoryEvery)
	go func() {
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				debug.FreeOSMemory()
			}
		}
	}()
}
