package shim

import (
	"context"
	"syscall"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/task"
)

// serviceState asks the in-process shim's task service directly, without
// the daemon's 2 s State cap (2 ms of wall time at the tests' scale, which
// a busy machine can miss).
func serviceState(t *testing.T, f *fixture, id string) *taskAPI.StateResponse {
	t.Helper()
	f.m.mu.Lock()
	svc := f.m.shims["sandbox1"].local.svc
	f.m.mu.Unlock()
	st, err := svc.State(context.Background(), &taskAPI.StateRequest{ID: id})
	if err != nil {
		t.Fatalf("state of %s: %v", id, err)
	}
	return st
}

// waitExit waits (on the wall clock, generously) for the task's exit.
// TestKernelSignal: a signal from outside containerd (kill -9 $CNTR_PID)
// ends the fake process the way the kernel would report it, through the
// shim's exit path: Wait returns the status, State says STOPPED, TaskExit
// is published.
func TestKernelSignal(t *testing.T) {
	cases := []struct {
		name        string
		annotations map[string]string
		sig         syscall.Signal
		exitCode    *uint32 // Exit instead of Signal
		want        Reaction
	}{
		{name: "SIGKILL", sig: syscall.SIGKILL, want: Reaction{Exits: true, ExitStatus: 137}},
		{name: "SIGTERM handled", annotations: map[string]string{AnnotationStopGrace: "30s"}, sig: syscall.SIGTERM,
			want: Reaction{Exits: true, ExitStatus: 143, After: 30 * time.Second}},
		{name: "SIGTERM ignored", annotations: map[string]string{AnnotationStopGrace: "never"}, sig: syscall.SIGTERM, want: Reaction{}},
		{name: "SIGUSR1 ignored", sig: syscall.SIGUSR1, want: Reaction{}},
		{name: "exit code", exitCode: new(uint32(3)), want: Reaction{Exits: true, ExitStatus: 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 0.001)
			tk := f.create(t, "c1", c.annotations)
			var (
				r   Reaction
				err error
			)
			if c.exitCode != nil {
				r, err = f.m.Exit(context.Background(), "c1", *c.exitCode)
			} else {
				r, err = f.m.Signal(context.Background(), "c1", c.sig)
			}
			if err != nil || r != c.want {
				t.Fatalf("reaction = %+v, %v; want %+v", r, err, c.want)
			}
			if !c.want.Exits {
				// Past any grace, the process still runs; SIGKILL then ends it.
				_ = f.clock.Sleep(context.Background(), time.Minute)
				if st := serviceState(t, f, "c1"); st.Status != task.Status_RUNNING {
					t.Fatalf("after an ignored signal: %v; want RUNNING", st.Status)
				}
				if _, err := f.m.Signal(context.Background(), "c1", syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				c.want.ExitStatus = 137
			}
			if e := waitExit(t, tk); e.Err != nil || e.Code != c.want.ExitStatus {
				t.Fatalf("wait = %+v, want exit status %d", e, c.want.ExitStatus)
			}
			if st := serviceState(t, f, "c1"); st.Status != task.Status_STOPPED || st.ExitStatus != c.want.ExitStatus {
				t.Errorf("status %v exit status %d; want STOPPED with %d", st.Status, st.ExitStatus, c.want.ExitStatus)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !f.events.seen(TopicTaskExit) {
				if time.Now().After(deadline) {
					t.Fatal("TaskExit was never forwarded to the events service")
				}
				time.Sleep(5 * time.Millisecond)
			}
			// The process is gone: kill(2) says ESRCH.
			if _, err := f.m.Signal(context.Background(), "c1", syscall.SIGKILL); !IsNotFound(err) {
				t.Errorf("signal to an exited process: %v, want NotFound", err)
			}
		})
	}
}

// TestKernelSignalTakesNoShimLock: the kernel delivers a signal while the
// shim's process lock is held (Delete of another kind, a slow Update);
// only the shim's exit processing waits for the lock.
func TestKernelSignalTakesNoShimLock(t *testing.T) {
	f := newFixture(t, 0.001)
	tk := f.create(t, "c1", nil)
	f.m.mu.Lock()
	p := f.m.shims["sandbox1"].local.svc.processes["c1"]
	f.m.mu.Unlock()
	p.mu.Lock()
	done := make(chan error, 1)
	go func() {
		_, err := f.m.Signal(context.Background(), "c1", syscall.SIGKILL)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		p.mu.Unlock()
		t.Fatal("the signal waited for the shim's process lock")
	}
	p.mu.Unlock()
	if e := waitExit(t, tk); e.Code != 137 {
		t.Fatalf("wait = %+v, want 137", e)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"KILL": 9, "sigkill": 9, "9": 9, "TERM": 15, "SIGTERM": 15, "15": 15, "int": 2, "USR1": syscall.SIGUSR1} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "-9", "BOGUS", "SIG"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q): want an error", in)
		}
	}
}
