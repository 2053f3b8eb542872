package shim

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestInProcessShimConnectionLoss: when the daemon's ttrpc connection to
// an in-process shim closes under it (the in-process form of a shim that
// died), the daemon treats the shim as dead, as containerd does: every
// task's Wait ends with UnknownExitStatus and an error, the tasks are
// NotFound, cleaning them up succeeds, the shim's server is closed (no
// leaked socket or goroutines), and a new task in the group gets a new
// shim.
func TestInProcessShimConnectionLoss(t *testing.T) {
	f := newFixture(t, 0.01)
	before := runtime.NumGoroutine()
	tasks := []*Task{f.create(t, "c1", nil), f.create(t, "c2", nil)}
	var waits []<-chan ExitStatus
	for _, tk := range tasks {
		ch, err := tk.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, ch)
	}
	f.m.mu.Lock()
	sc := f.m.shims["sandbox1"]
	f.m.mu.Unlock()
	if sc == nil || sc.local == nil {
		t.Fatal("no in-process shim for sandbox1")
	}
	socket := sc.address
	sc.client.Close() // the connection drops

	for i, ch := range waits {
		select {
		case e := <-ch:
			if e.Code != UnknownExitStatus || e.Err == nil {
				t.Errorf("Wait of %s after the connection closed: %+v, want %d with an error", tasks[i].ID(), e, UnknownExitStatus)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Wait of %s did not end when the connection closed", tasks[i].ID())
		}
	}
	for _, tk := range tasks {
		if _, err := f.m.Get(context.Background(), tk.ID()); !IsNotFound(err) {
			t.Errorf("Get %s: %v, want NotFound", tk.ID(), err)
		}
		if err := f.m.DeleteTask(context.Background(), tk.ID()); err != nil {
			t.Errorf("DeleteTask %s: %v", tk.ID(), err)
		}
		if _, ok := f.m.Lookup(tk.ID()); ok {
			t.Errorf("task %s still listed after DeleteTask", tk.ID())
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(socket)
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the in-process shim still serves %s: it was not closed", socket)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := f.m.Shutdown(context.Background(), "sandbox1"); err != nil {
		t.Errorf("Shutdown of the dead shim's group: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before+2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the dead shim was cleaned up, %d before it started\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	// The group gets a new shim.
	tk := f.create(t, "c3", nil)
	if st, err := tk.Status(context.Background()); err != nil {
		t.Fatalf("task in a new shim of the group: %v", err)
	} else if st.Pid == 0 {
		t.Errorf("task in a new shim of the group has no pid")
	}
}
