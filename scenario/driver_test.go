package scenario

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// fakeCRI is a scriptable CRI runtime for the driver's unit tests: pods
// with one sandbox each, containers whose state a test sets, containers
// whose ContainerStatus hangs, and a switch that fails ListContainers.
type fakeCRI struct {
	runtime.UnimplementedRuntimeServiceServer

	mu         sync.Mutex
	sandboxes  []*runtime.PodSandbox
	containers []*runtime.Container
	stuck      map[string]bool // ContainerStatus hangs until the caller gives up
	listErr    error           // returned by the unfiltered ListContainers
	listDelay  time.Duration   // before the unfiltered ListContainers answers
	clock      clock.Clock     // the driver's: listDelay passes on it
	statusOf   map[string]int  // ContainerStatus calls by container id
	updates    []*runtime.UpdateContainerResourcesRequest
}

func (f *fakeCRI) addPod(name string, containers map[string]runtime.ContainerState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	labels := map[string]string{labelPodName: name, labelPodNamespace: "default", labelPodUID: "uid-" + name}
	f.sandboxes = append(f.sandboxes, &runtime.PodSandbox{Id: "sb-" + name, Labels: labels, State: runtime.PodSandboxState_SANDBOX_READY})
	for c, st := range containers {
		cl := merge(labels, map[string]string{labelContainerName: c})
		f.containers = append(f.containers, &runtime.Container{
			Id: name + "-" + c, PodSandboxId: "sb-" + name, Metadata: &runtime.ContainerMetadata{Name: c}, State: st, Labels: cl,
		})
	}
}

func (f *fakeCRI) setState(id string, st runtime.ContainerState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.Id == id {
			c.State = st
		}
	}
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeCRI) ListPodSandbox(ctx context.Context, r *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtime.PodSandbox
	for _, s := range f.sandboxes {
		if matches(r.GetFilter().GetLabelSelector(), s.Labels) {
			out = append(out, s)
		}
	}
	return &runtime.ListPodSandboxResponse{Items: out}, nil
}

func (f *fakeCRI) PodSandboxStatus(ctx context.Context, r *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	return &runtime.PodSandboxStatusResponse{Status: &runtime.PodSandboxStatus{Id: r.PodSandboxId}}, nil
}

func (f *fakeCRI) ListContainers(ctx context.Context, r *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	f.mu.Lock()
	unfiltered := len(r.GetFilter().GetLabelSelector()) == 0
	delay, err := f.listDelay, f.listErr
	f.mu.Unlock()
	if unfiltered {
		_ = f.clock.Sleep(ctx, delay)
		if err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtime.Container
	for _, c := range f.containers {
		if matches(r.GetFilter().GetLabelSelector(), c.Labels) {
			out = append(out, &runtime.Container{Id: c.Id, Metadata: c.Metadata, State: c.State, Labels: c.Labels})
		}
	}
	return &runtime.ListContainersResponse{Containers: out}, nil
}

func (f *fakeCRI) ContainerStatus(ctx context.Context, r *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	f.mu.Lock()
	f.statusOf[r.ContainerId]++
	stuck := f.stuck[r.ContainerId]
	var state runtime.ContainerState
	found := false
	for _, c := range f.containers {
		if c.Id == r.ContainerId {
			state, found = c.State, true
		}
	}
	f.mu.Unlock()
	if stuck {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "container %s not found", r.ContainerId)
	}
	return &runtime.ContainerStatusResponse{Status: &runtime.ContainerStatus{Id: r.ContainerId, State: state}}, nil
}

func (f *fakeCRI) UpdateContainerResources(ctx context.Context, r *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, r)
	return &runtime.UpdateContainerResourcesResponse{}, nil
}

func (f *fakeCRI) statusCalls(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusOf[id]
}

// startFake serves a fakeCRI on a unix socket and returns a driver for it
// with short, real-time periods.
func startFake(t *testing.T, cfg DriverConfig, hooks Hooks) (*fakeCRI, *Driver, *grpc.ClientConn) {
	t.Helper()
	dir, err := os.MkdirTemp("", "fcd-drv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "cri.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	clk := testClock(t)
	fake := &fakeCRI{stuck: map[string]bool{}, statusOf: map[string]int{}, clock: clk}
	srv := grpc.NewServer()
	runtime.RegisterRuntimeServiceServer(srv, fake)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(logrus.PanicLevel)
	return fake, NewDriver(conn, clk, logrus.NewEntry(log), cfg, hooks), conn
}

// testClock runs at time scale 1 but leaves out the time the machine
// starved the test (clock.Meter), so a busy machine does not cross a test's
// millisecond thresholds.
func testClock(t *testing.T) clock.Clock {
	clk, err := clock.NewDiscounting(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clk.Stop)
	return clk
}

var running, exited = runtime.ContainerState_CONTAINER_RUNNING, runtime.ContainerState_CONTAINER_EXITED

// TestRelistInspectsChangedPods: the first relist inspects every pod (all
// are new), the next ones only pods whose containers changed state.
func TestRelistInspectsChangedPods(t *testing.T) {
	var last Relist
	fake, d, _ := startFake(t, DriverConfig{RuntimeRequestTimeout: time.Second}, Hooks{Relist: func(r Relist) { last = r }})
	fake.addPod("a", map[string]runtime.ContainerState{"c": running})
	fake.addPod("b", map[string]runtime.ContainerState{"c": running, "side": running})
	ctx := context.Background()

	steps := []struct {
		name        string
		change      func()
		wantChanged int
		wantStatus  map[string]int // cumulative ContainerStatus calls
	}{
		{"first relist: every pod is new", nil, 2, map[string]int{"a-c": 1, "b-c": 1, "b-side": 1}},
		{"nothing changed", nil, 0, map[string]int{"a-c": 1, "b-c": 1, "b-side": 1}},
		{"b's sidecar exits", func() { fake.setState("b-side", exited) }, 1, map[string]int{"a-c": 1, "b-c": 2, "b-side": 2}},
		{"created counts as unknown, like kubelet", func() { fake.setState("a-c", runtime.ContainerState_CONTAINER_CREATED) }, 1, map[string]int{"a-c": 2, "b-c": 2, "b-side": 2}},
		{"created to unknown is no change", func() { fake.setState("a-c", runtime.ContainerState_CONTAINER_UNKNOWN) }, 0, map[string]int{"a-c": 2, "b-c": 2, "b-side": 2}},
	}
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		d.relist(ctx)
		if last.Err != nil || last.Changed != s.wantChanged {
			t.Errorf("%s: relist %+v, want %d changed pods", s.name, last, s.wantChanged)
		}
		for id, n := range s.wantStatus {
			if got := fake.statusCalls(id); got != n {
				t.Errorf("%s: %d ContainerStatus calls for %s, want %d", s.name, got, id, n)
			}
		}
	}
	if st := d.Stats(false); len(st.Unknown) != 1 || st.Unknown[0] != "a-c" {
		t.Errorf("containers seen UNKNOWN = %v, want [a-c]", st.Unknown)
	}
}

// TestRelistTimeIsTheStartOfASuccessfulGetPods: relistTime only moves when
// GetPods succeeds, and then to the moment the relist began.
func TestRelistTimeIsTheStartOfASuccessfulGetPods(t *testing.T) {
	fake, d, _ := startFake(t, DriverConfig{RuntimeRequestTimeout: time.Second}, Hooks{})
	fake.addPod("a", map[string]runtime.ContainerState{"c": running})
	ctx := context.Background()

	fake.mu.Lock()
	fake.listErr = status.Error(codes.Unavailable, "runtime is down")
	fake.mu.Unlock()
	d.relist(ctx)
	if !d.rec.relistTime.IsZero() {
		t.Fatalf("a failed GetPods set relistTime to %v", d.rec.relistTime)
	}
	st := d.Stats(false)
	if st.Relists != 1 || st.FailedRelists != 1 || st.Calls["ListContainers"].Errors != 1 {
		t.Errorf("stats after a failed relist = %+v", st)
	}

	fake.mu.Lock()
	fake.listErr, fake.listDelay = nil, 150*time.Millisecond
	fake.mu.Unlock()
	before := d.clock.Now()
	d.relist(ctx)
	if rt := d.rec.relistTime; rt.Before(before) || rt.Sub(before) > 50*time.Millisecond {
		t.Errorf("relistTime = %v after a relist that began at %v and listed for 150ms: want its start", rt, before)
	}
	if st := d.Stats(false); st.MaxRelist < 150*time.Millisecond || st.Max("ListContainers") < 150*time.Millisecond {
		t.Errorf("worst relist %v, worst list %v: want at least the 150ms list", st.MaxRelist, st.Max("ListContainers"))
	}
}

// TestFailedInspectionIsRetriedTwice mirrors kubelet: a pod whose status
// fails keeps its old record, so the next relist sees it changed again,
// and it is also on the reinspection list: two inspections, each waiting
// out the call timeout.
func TestFailedInspectionIsRetriedTwice(t *testing.T) {
	var last Relist
	timeout := 80 * time.Millisecond
	fake, d, _ := startFake(t, DriverConfig{RuntimeRequestTimeout: timeout}, Hooks{Relist: func(r Relist) { last = r }})
	fake.addPod("ok", map[string]runtime.ContainerState{"c": running})
	fake.addPod("stuck", map[string]runtime.ContainerState{"app": running})
	fake.mu.Lock()
	fake.stuck["stuck-app"] = true
	fake.mu.Unlock()
	ctx := context.Background()

	d.relist(ctx)
	if got := fake.statusCalls("stuck-app"); got != 1 || last.FailedInspections != 1 || last.Took < timeout {
		t.Fatalf("first relist: %d calls to the stuck container, relist %+v; want 1 call and one failed inspection", got, last)
	}
	d.relist(ctx)
	if got := fake.statusCalls("stuck-app"); got != 3 {
		t.Errorf("second relist: %d calls to the stuck container in all, want 3 (changed again + reinspected)", got)
	}
	if last.Changed != 1 || last.Reinspected != 1 || last.FailedInspections != 2 || last.Took < 2*timeout {
		t.Errorf("second relist = %+v, want 1 changed, 1 reinspected, 2 failures, at least %v", last, 2*timeout)
	}
	if got := fake.statusCalls("ok-c"); got != 1 {
		t.Errorf("the healthy pod was inspected %d times, want once", got)
	}
	// gRPC words a deadline in more than one way; the code is the same.
	deadlines := 0
	for _, e := range d.Stats(false).Errors {
		if e.Method != "ContainerStatus" || e.Code != codes.DeadlineExceeded {
			t.Errorf("unexpected error %s", e)
		}
		deadlines += e.Count
	}
	if deadlines != 3 {
		t.Errorf("%d ContainerStatus DeadlineExceeded errors, want 3", deadlines)
	}
	// Once it answers, one inspection succeeds and the pod settles.
	fake.mu.Lock()
	fake.stuck["stuck-app"] = false
	fake.mu.Unlock()
	d.relist(ctx)
	d.relist(ctx)
	if last.Changed != 0 || last.Reinspected != 0 {
		t.Errorf("after recovery: relist %+v, want nothing left to inspect", last)
	}
}

// TestCPUManagerUpdatesWhatThePodCacheSaysRuns: the older CPU manager
// learns containers from kubelet's pod cache, not from the runtime, so it
// updates what the last inspection saw running.
func TestCPUManagerUpdatesWhatThePodCacheSaysRuns(t *testing.T) {
	fake, d, _ := startFake(t, DriverConfig{RuntimeRequestTimeout: time.Second, CPUManagerPeriod: time.Second, CPUSet: "0-3"}, Hooks{})
	fake.addPod("a", map[string]runtime.ContainerState{"c": running, "done": exited})
	fake.addPod("b", map[string]runtime.ContainerState{"c": running})
	ctx := context.Background()
	d.relist(ctx)
	// The runtime now says b-c exited, but no relist has seen it.
	fake.setState("b-c", exited)
	d.reconcileCPUs(ctx)
	var ids []string
	for _, u := range fake.updates {
		ids = append(ids, u.ContainerId)
		if u.GetLinux().GetCpusetCpus() != "0-3" {
			t.Errorf("update of %s sets cpuset %q, want 0-3", u.ContainerId, u.GetLinux().GetCpusetCpus())
		}
	}
	if got := strings.Join(ids, ","); got != "a-c,b-c" {
		t.Errorf("updated %s, want a-c,b-c (running in the cache, in pod order)", got)
	}
}

// TestHealthTransitions: kubelet's message, as the threshold is crossed and
// recovered.
func TestHealthTransitions(t *testing.T) {
	var events []HealthEvent
	fake, d, _ := startFake(t, DriverConfig{RuntimeRequestTimeout: time.Second, RelistThreshold: 40 * time.Millisecond},
		Hooks{Health: func(h HealthEvent) { events = append(events, h) }})
	fake.addPod("a", map[string]runtime.ContainerState{"c": running})
	ctx := context.Background()
	d.relist(ctx)
	d.checkHealth(ctx)
	if len(events) != 0 {
		t.Fatalf("healthy start reported %v", events)
	}
	fake.mu.Lock()
	fake.listErr = errors.New("down")
	fake.mu.Unlock()
	_ = d.clock.Sleep(ctx, 60*time.Millisecond)
	d.relist(ctx)
	d.checkHealth(ctx)
	if len(events) != 1 || events[0].Healthy || !strings.HasPrefix(events[0].Message, "PLEG is not healthy: pleg was last seen active ") ||
		!strings.HasSuffix(events[0].Message, "ago; threshold is 40ms") {
		t.Fatalf("events = %+v, want one unhealthy transition in kubelet's words", events)
	}
	fake.mu.Lock()
	fake.listErr = nil
	fake.mu.Unlock()
	d.relist(ctx)
	d.checkHealth(ctx)
	if len(events) != 2 || !events[1].Healthy {
		t.Errorf("events = %+v, want a recovery", events)
	}
	st := d.Stats(false)
	if st.Healthy() || st.MaxPLEGLastSeen < 60*time.Millisecond || !st.HealthyAtEnd() {
		t.Errorf("stats: healthy %v, longest %v, healthy at end %v; want unhealthy at some point, >= 60ms, healthy at the end",
			st.Healthy(), st.MaxPLEGLastSeen, st.HealthyAtEnd())
	}
}

// TestRecorderCountsCallsInFlight: a call still hanging when the run ends
// is as long as it has lasted; calls ending after the freeze are ignored.
func TestRecorderCountsCallsInFlight(t *testing.T) {
	r := newRecorder(clock.Real(), time.Minute)
	tok := r.begin("ListContainers")
	time.Sleep(30 * time.Millisecond)
	st := r.snapshot(true)
	if st.Max("ListContainers") < 30*time.Millisecond {
		t.Errorf("in-flight call counted as %v, want at least 30ms", st.Max("ListContainers"))
	}
	r.end(tok, status.Error(codes.Canceled, "run over"))
	if st := r.snapshot(false); st.Calls["ListContainers"].Errors != 0 || len(st.Errors) != 0 {
		t.Errorf("a call ending after the freeze was recorded: %+v", st)
	}
}

// TestErrorsAreGroupedWithoutIDs: the same failure on two containers is
// one kind of error.
func TestErrorsAreGroupedWithoutIDs(t *testing.T) {
	r := newRecorder(clock.Real(), time.Minute)
	for _, id := range []string{strings.Repeat("a", 64), strings.Repeat("b", 64)} {
		r.end(r.begin("UpdateContainerResources"), status.Errorf(codes.Unknown, "container %q is in removing or stopping state", id))
	}
	errs := r.snapshot(false).Errors
	if len(errs) != 1 || errs[0].Count != 2 || errs[0].String() != `UpdateContainerResources: Unknown: container "<id>" is in removing or stopping state` {
		t.Errorf("errors = %+v", errs)
	}
}

// TestSchedules: wait.Until pauses a full period after each round; a
// ticker starts the next round as soon as an overrunning one ends.
func TestSchedules(t *testing.T) {
	const round, period = 50 * time.Millisecond, 20 * time.Millisecond
	gaps := func(run func(context.Context, clock.Clock, time.Duration, func(context.Context))) (minGap time.Duration, n int) {
		ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
		defer cancel()
		var starts []time.Time
		clk := testClock(t)
		run(ctx, clk, period, func(ctx context.Context) {
			starts = append(starts, clk.Now())
			_ = clk.Sleep(ctx, round)
		})
		minGap = time.Hour
		for i := 1; i < len(starts); i++ {
			minGap = min(minGap, starts[i].Sub(starts[i-1]))
		}
		return minGap, len(starts)
	}
	// Load can only stretch gaps, so the bounds are one-sided.
	if g, n := gaps(until); n < 3 || g < round+period-2*time.Millisecond {
		t.Errorf("sliding: %d rounds, closest %v apart; want every round a full period after the previous ended (%v)", n, g, round+period)
	}
	if g, n := gaps(every); n < 3 || g > round+period-5*time.Millisecond {
		t.Errorf("ticker: %d rounds, closest %v apart; want a round right after an overrunning one (~%v)", n, g, round)
	}
}

// TestProberNamesHungContainers: a container whose status does not answer
// within the probe's timeout is named once, and reported again when it
// answers.
func TestProberNamesHungContainers(t *testing.T) {
	fake, _, conn := startFake(t, DriverConfig{}, Hooks{})
	fake.addPod("web", map[string]runtime.ContainerState{"c": running})
	fake.addPod("stuck", map[string]runtime.ContainerState{"app": running})
	fake.mu.Lock()
	fake.stuck["stuck-app"] = true
	fake.mu.Unlock()
	p := NewProber(conn, fake.clock, time.Second, 50*time.Millisecond)
	ctx := context.Background()

	r := p.Round(ctx)
	if len(r.Probes) != 2 || len(r.NewlyHung) != 1 || r.NewlyHung[0].ID != "stuck-app" || r.NewlyHung[0].Pod != "stuck" || r.NewlyHung[0].Name != "app" {
		t.Fatalf("first round = %+v, want stuck-app newly hung", r)
	}
	if r := p.Round(ctx); len(r.NewlyHung) != 0 || len(p.Hung()) != 1 {
		t.Errorf("second round = %+v, hung %v: want it still hung, not newly", r, p.Hung())
	}
	fake.mu.Lock()
	fake.stuck["stuck-app"] = false
	fake.listErr = errors.New("list stuck")
	fake.mu.Unlock()
	r = p.Round(ctx)
	if r.ListErr == nil || len(r.Probes) != 2 || len(r.Recovered) != 1 || len(p.Hung()) != 0 {
		t.Errorf("round after recovery with a failing list = %+v: want the last list's containers probed and stuck-app recovered", r)
	}
}
