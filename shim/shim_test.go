package shim

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/ttrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

func TestRootfsUnmountCost(t *testing.T) {
	start := time.Unix(1000, 0)
	disk := DiskModel{WriteRate: 1 << 20, DirtyLimit: 100 << 20, Throughput: 10 << 20}
	cases := []struct {
		name    string
		options []string
		initial int64
		written time.Duration
		want    time.Duration
	}{
		{"nothing dirty", nil, 0, 0, 0},
		{"initial dirty", nil, 20 << 20, 0, 2 * time.Second},
		{"grows while running", nil, 0, 30 * time.Second, 3 * time.Second},
		{"capped at dirty limit", nil, 0, time.Hour, 10 * time.Second},
		{"volatile syncs nothing", []string{"lowerdir=/a", "volatile"}, 50 << 20, time.Minute, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRootfs([]*types.Mount{{Type: "overlay", Options: c.options}}, disk, c.initial)
			if err := r.attach(nil, start); err != nil {
				t.Fatal(err)
			}
			r.startWriting(start)
			r.stopWriting(start.Add(c.written))
			if got := r.UnmountCost(start.Add(c.written)); got != c.want {
				t.Errorf("UnmountCost = %v, want %v", got, c.want)
			}
		})
	}
}

func TestParseBehaviourRejectsBadAnnotations(t *testing.T) {
	for _, a := range []map[string]string{
		{AnnotationExitAfter: "soon"},
		{AnnotationExitAfter: "-1s"},
		{AnnotationExitCode: "300"},
		{AnnotationStopGrace: "later"},
		{AnnotationDirtyBytes: "lots"},
	} {
		if _, err := ParseBehaviour(a, Defaults{}); err == nil {
			t.Errorf("ParseBehaviour(%v): want error", a)
		} else {
			for k := range a {
				if !strings.Contains(err.Error(), k) {
					t.Errorf("error %q does not name %s", err, k)
				}
			}
		}
	}
}

// eventsRecorder is a stand-in for the daemon's ttrpc events service.
type eventsRecorder struct {
	mu     sync.Mutex
	topics []string
}

func (r *eventsRecorder) Forward(ctx context.Context, req *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	r.mu.Lock()
	r.topics = append(r.topics, req.Envelope.Topic)
	r.mu.Unlock()
	return &emptypb.Empty{}, nil
}

func (r *eventsRecorder) seen(topic string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.topics {
		if t == topic {
			return true
		}
	}
	return false
}

type fixture struct {
	m      *Manager
	events *eventsRecorder
	clock  clock.Clock
	state  string
	addr   string
	log    *logrus.Logger // the last manager's
	// faults, if set before manager is called, reach the in-process shims.
	faults *faults.Injector
}

func newFixture(t *testing.T, scale float64) *fixture {
	t.Helper()
	dir, err := os.MkdirTemp("", "fcd-shim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Below scale 1 the clock leaves out the time the machine starved the
	// test (clock.Meter), so a busy machine does not stretch the figures.
	clk, err := clock.NewDiscounting(scale)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clk.Stop)
	addr := filepath.Join(dir, "events.sock")
	ln, err := net.Listen("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	rec := &eventsRecorder{}
	srv, _ := ttrpc.NewServer()
	eventsapi.RegisterTTRPCEventsService(srv, rec)
	go srv.Serve(context.Background(), ln)
	t.Cleanup(func() { srv.Close() })
	f := &fixture{events: rec, clock: clk, state: filepath.Join(dir, "state"), addr: addr}
	f.m = f.manager(t)
	return f
}

func (f *fixture) manager(t *testing.T) *Manager {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	log.SetOutput(io.Discard) // a failing test's output is its failure; tests that read the log set their own
	f.log = log
	m, err := NewManager(ManagerConfig{
		StateDir: f.state, Mode: ModeInProcess, EventsAddress: f.addr, Clock: f.clock,
		Defaults: Defaults{Disk: DiskModel{Throughput: 1 << 20}}, Log: logrus.NewEntry(log),
		Faults: f.faults,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func (f *fixture) create(t *testing.T, id string, annotations map[string]string, options ...string) *Task {
	t.Helper()
	tk, err := f.m.Create(context.Background(), CreateOpts{
		ID: id, Group: "sandbox1", Spec: &specs.Spec{Version: "1.1.0", Annotations: annotations},
		Rootfs: []*types.Mount{{Type: "overlay", Source: "overlay", Options: options}},
	})
	if err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	if err := tk.Start(context.Background()); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return tk
}

func TestScriptedExitReachesWait(t *testing.T) {
	f := newFixture(t, 0.001)
	tk := f.create(t, "c1", map[string]string{AnnotationExitAfter: "30s", AnnotationExitCode: "3"})
	ch, _ := tk.Wait(context.Background())
	select {
	case e := <-ch:
		if e.Err != nil || e.Code != 3 {
			t.Fatalf("exit = %+v, want code 3", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("process never exited")
	}
	st, err := tk.Status(context.Background())
	if err != nil || st.Status != task.Status_STOPPED {
		t.Fatalf("status = %v, %v; want STOPPED", st.Status, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !f.events.seen(TopicTaskExit) {
		if time.Now().After(deadline) {
			t.Fatal("TaskExit was never forwarded to the events service")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDeleteHoldsProcessLock is incident 1 at the shim: Delete holds the
// process lock across a slow unmount; the daemon's 10 s Delete deadline
// expires but the unmount goes on; Update waits for the lock, then fails on
// the deleted process; State gives up at its 2 s cap.
func TestDeleteHoldsProcessLock(t *testing.T) {
	f := newFixture(t, 0.01)
	// 60 MiB dirty at 1 MiB/s: a 60 s unmount.
	tk := f.create(t, "c1", map[string]string{AnnotationDirtyBytes: "60MiB"})
	if err := tk.Kill(context.Background(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ch, _ := tk.Wait(context.Background())
	<-ch

	ctx, cancel := f.clock.WithTimeout(context.Background(), 10*time.Second)
	start := f.clock.Now()
	_, err := tk.Delete(ctx, WithProcessKill)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "failed to delete task: context deadline exceeded: unknown") {
		t.Fatalf("first delete: err = %v, want the field's deadline error", err)
	}
	if took := f.clock.Since(start); took < 9*time.Second || took > 25*time.Second {
		t.Errorf("first delete took %v, want about 10s", took)
	}

	// The unmount still holds the lock: State is capped, Update waits.
	st, err := tk.Status(context.Background())
	if err != nil || st.Status != task.Status_UNKNOWN {
		t.Errorf("status during unmount = %v, %v; want UNKNOWN after the 2s cap", st.Status, err)
	}
	uctx, ucancel := f.clock.WithTimeout(context.Background(), 5*time.Minute)
	defer ucancel()
	err = tk.Update(uctx, &specs.LinuxResources{})
	took := f.clock.Since(start)
	if err == nil || !strings.Contains(err.Error(), "cannot update a deleted process") {
		t.Fatalf("update: err = %v, want cannot update a deleted process", err)
	}
	if took < 50*time.Second || took > 90*time.Second {
		t.Errorf("update returned %v after the delete began, want about 60s (the unmount)", took)
	}
	// Update returns once Delete drops the process lock, a moment before
	// the shim forgets the process (the same order as runc-shim's).
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := tk.Status(context.Background())
		if IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after delete: err = %v, want NotFound", err)
		}
		time.Sleep(time.Millisecond)
	}
	// The daemon's retry: containerd's client stops at the state check's
	// NotFound, before the Delete RPC (whose failure it would wrap), and
	// the task is forgotten.
	_, err = tk.Delete(context.Background(), WithProcessKill)
	if !IsNotFound(err) || strings.Contains(err.Error(), "failed to delete task") {
		t.Errorf("retried delete: err = %v, want the state check's NotFound", err)
	}
	if _, err := f.m.Get(context.Background(), "c1"); !IsNotFound(err) {
		t.Errorf("Get after the retried delete: err = %v, want NotFound", err)
	}
}

func TestVolatileDeleteIsFast(t *testing.T) {
	f := newFixture(t, 0.01)
	tk := f.create(t, "c1", map[string]string{AnnotationDirtyBytes: "60MiB"}, "volatile")
	_ = tk.Kill(context.Background(), syscall.SIGKILL)
	ch, _ := tk.Wait(context.Background())
	<-ch
	ctx, cancel := f.clock.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := f.clock.Now()
	if _, err := tk.Delete(ctx, WithProcessKill); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if took := f.clock.Since(start); took > 5*time.Second {
		t.Errorf("volatile delete took %v, want well under the 10s deadline", took)
	}
}

func TestInProcessShimRestoresAfterManagerRestart(t *testing.T) {
	f := newFixture(t, 0.01)
	f.create(t, "c1", nil)
	f.m.Close()
	m2 := f.manager(t)
	tasks, err := m2.Load(context.Background())
	if err != nil || len(tasks) != 1 {
		t.Fatalf("Load = %d tasks, %v; want 1", len(tasks), err)
	}
	st, err := tasks[0].Status(context.Background())
	if err != nil || st.Status != task.Status_RUNNING {
		t.Fatalf("restored status = %v, %v; want RUNNING", st.Status, err)
	}
	if _, err := m2.Get(context.Background(), "c1"); err != nil {
		t.Fatalf("Get after load: %v", err)
	}
}

func TestGetUnknownTaskIsNotFound(t *testing.T) {
	f := newFixture(t, 0.01)
	if _, err := f.m.Get(context.Background(), "nope"); !IsNotFound(err) {
		t.Fatalf("err = %v, want NotFound", err)
	}
}
