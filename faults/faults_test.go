package faults

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

func TestParseSpec(t *testing.T) {
	cases := []struct {
		in      string
		want    string // String() of the parsed spec; "" means an error is wanted
		errPart string
	}{
		{in: "delay(2s)", want: "delay(2s)"},
		{in: "2*error(Unavailable)->delay(1s)->off", want: "2*error(Unavailable)->delay(1s)->off"},
		{in: "30%delay(2s, 500ms)", want: "30%delay(2s, 500ms)"},
		{in: "error(unknown, disk full)", want: "error(Unknown, disk full)"},
		{in: "1*block->off", want: "1*block->off"},
		{in: "panic(boom)", want: "panic(boom)"},
		{in: "", errPart: "empty"},
		{in: "delay(soon)", errPart: "not a duration"},
		{in: "error(Sometimes)", errPart: "not a gRPC code"},
		{in: "error(OK)", errPart: "not an error"},
		{in: "delay(1s)->off", want: "delay(1s)->off"},
		{in: "50%2*delay(1s)", want: "2*50%delay(1s)"},
		{in: "0*delay(1s)", errPart: "count"},
		{in: "150%delay(1s)", errPart: "percent"},
		{in: "explode", errPart: "unknown action"},
		{in: "delay(1s", errPart: "parenthesis"},
		{in: "block(1s)", errPart: "no arguments"},
		{in: "exit(137)", want: "exit(137)"},
		{in: "1*exit(KILL)->off", want: "1*exit(137)->off"},
		{in: "exit(sigterm)", want: "exit(143)"},
		{in: "exit(0)", want: "exit(0)"},
		{in: "exit(256)", errPart: "0 to 255"},
		{in: "exit(soon)", errPart: "signal name"},
		{in: "exit()", errPart: "exit takes"},
		{in: "exit(1, 2)", errPart: "exit takes"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			s, err := ParseSpec(c.in)
			if c.want == "" {
				if err == nil || !strings.Contains(err.Error(), c.errPart) {
					t.Fatalf("ParseSpec(%q) error = %v, want one mentioning %q", c.in, err, c.errPart)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSpec(%q): %v", c.in, err)
			}
			if s.String() != c.want {
				t.Errorf("ParseSpec(%q) = %q, want %q", c.in, s.String(), c.want)
			}
		})
	}
}

func TestSelector(t *testing.T) {
	target := Target{
		ContainerID: "40585f73abcd", SandboxID: "99aa00", ContainerName: "loop", PodName: "job", PodNamespace: "batch",
		Labels: map[string]string{"app": "x"}, Annotations: map[string]string{"a": "1"},
	}
	cases := []struct {
		sel   string
		match bool
	}{
		{"all", true},
		{"", true},
		{"id=40585f73", true},
		{"id=99aa", true},
		{"id=41", false},
		{"pod=job,namespace=batch", true},
		{"pod=job,namespace=default", false},
		{"container=loop", true},
		{"label.app=x", true},
		{"label.app=y", false},
		{"annotation.a=1", true},
		{"annotation.b=1", false},
	}
	for _, c := range cases {
		sel, err := ParseSelector(c.sel)
		if err != nil {
			t.Fatalf("ParseSelector(%q): %v", c.sel, err)
		}
		if got := sel.Matches(target); got != c.match {
			t.Errorf("%q matches = %v, want %v", c.sel, got, c.match)
		}
	}
	for _, bad := range []string{"id", "colour=red", "pod=", "label.=x"} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("ParseSelector(%q): want an error", bad)
		}
	}
}

func newTestInjector(t *testing.T, scale float64) (*Injector, clock.Clock) {
	t.Helper()
	// The clock leaves out the time the machine starved the test.
	clk, err := clock.NewDiscounting(scale)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clk.Stop)
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	in := New(clk, logrus.NewEntry(log))
	t.Cleanup(in.Close)
	return in, clk
}

func TestSequenceCountsAndOff(t *testing.T) {
	in, _ := newTestInjector(t, 0.001)
	if _, err := in.Add(PointShimUnmount, Selector{}, "2*error(Unavailable)->1*delay(1s)->off", "test"); err != nil {
		t.Fatal(err)
	}
	var codesSeen []codes.Code
	for range 5 {
		codesSeen = append(codesSeen, status.Code(in.Fire(context.Background(), PointShimUnmount, Target{})))
	}
	want := []codes.Code{codes.Unavailable, codes.Unavailable, codes.OK, codes.OK, codes.OK}
	for i := range want {
		if codesSeen[i] != want[i] {
			t.Fatalf("firings = %v, want %v", codesSeen, want)
		}
	}
	info := in.List()[0]
	if info.Fired != 3 || info.Current != "off" {
		t.Errorf("info = %+v, want fired 3 and current off", info)
	}
	if in.Counts()[PointShimUnmount] != 3 {
		t.Errorf("counts = %v, want 3 at %s", in.Counts(), PointShimUnmount)
	}
}

func TestDelayUsesClock(t *testing.T) {
	in, clk := newTestInjector(t, 0.001)
	in.Add(PointStatusFsync, Selector{}, "delay(30s)", "test")
	start := clk.Now()
	wall := time.Now()
	if err := in.Fire(context.Background(), PointStatusFsync, Target{}); err != nil {
		t.Fatal(err)
	}
	if v := clk.Since(start); v < 30*time.Second {
		t.Errorf("delay lasted %v of scenario time, want 30s", v)
	}
	if time.Since(wall) > 5*time.Second {
		t.Errorf("a 30s delay at scale 0.001 took %v of wall time", time.Since(wall))
	}
}

func TestTargetingSkipsOthers(t *testing.T) {
	in, _ := newTestInjector(t, 0.001)
	in.Add(PointContainerStatus, Selector{ID: "abc"}, "error(NotFound)", "test")
	if err := in.Fire(context.Background(), PointContainerStatus, Target{ContainerID: "def"}); err != nil {
		t.Errorf("fault for abc fired for def: %v", err)
	}
	if status.Code(in.Fire(context.Background(), PointContainerStatus, Target{ContainerID: "abc123"})) != codes.NotFound {
		t.Error("fault for abc did not fire for abc123")
	}
}

func TestBlockReleaseAndClear(t *testing.T) {
	in, _ := newTestInjector(t, 1)
	info, _ := in.Add(PointShimUnmount, Selector{}, "block", "test")
	done := make(chan struct{}, 3)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.Fire(context.Background(), PointShimUnmount, Target{})
			done <- struct{}{}
		}()
	}
	waitFor(t, func() bool { return in.List()[0].Blocked == 2 })
	select {
	case <-done:
		t.Fatal("a blocked call returned before release")
	case <-time.After(50 * time.Millisecond):
	}
	n, err := in.Release(info.ID)
	if err != nil || n != 2 {
		t.Fatalf("Release = %d, %v; want 2 released", n, err)
	}
	wg.Wait()
	// Still armed: the next call blocks again, until the fault is cleared.
	go func() { in.Fire(context.Background(), PointShimUnmount, Target{}); done <- struct{}{} }()
	waitFor(t, func() bool { return in.List()[0].Blocked == 1 })
	if _, err := in.Clear(info.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("clearing a block fault did not release its caller")
	}
	if len(in.List()) != 0 {
		t.Errorf("faults after clear: %v", in.List())
	}
	if _, err := in.Clear("f999"); err == nil {
		t.Error("clearing an unknown id: want an error")
	}
	// A call naming a known and an unknown id changes nothing, and the
	// known fault can still be cleared (once).
	known, _ := in.Add(PointShimUnmount, Selector{}, "delay(1s)", "test")
	if _, err := in.Clear(known.ID, "f999"); err == nil {
		t.Error("clearing a known and an unknown id: want an error")
	}
	if len(in.List()) != 1 {
		t.Fatalf("faults after a refused clear: %v, want the known one still armed", in.List())
	}
	if removed, err := in.Clear(known.ID); err != nil || len(removed) != 1 {
		t.Errorf("clear after a refused clear = %v, %v", removed, err)
	}
}

func TestPercent(t *testing.T) {
	in, _ := newTestInjector(t, 0.001)
	in.Add(PointImagePull, Selector{}, "25%error(Unavailable)", "test")
	failed := 0
	for range 2000 {
		if in.Fire(context.Background(), PointImagePull, Target{}) != nil {
			failed++
		}
	}
	if failed < 350 || failed > 650 {
		t.Errorf("25%% fault fired %d times in 2000, want about 500", failed)
	}
}

func TestAddRejects(t *testing.T) {
	in, _ := newTestInjector(t, 1)
	cases := []struct{ point, spec, errPart string }{
		{"shim.Unmount", "delay(1s)", "unknown fault point"},
		{PointStatusFsync, "panic(x)", "panic models a shim process crash"},
		{PointShimUnmount, "nonsense", "unknown action"},
	}
	for _, c := range cases {
		if _, err := in.Add(c.point, Selector{}, c.spec, "test"); err == nil || !strings.Contains(err.Error(), c.errPart) {
			t.Errorf("Add(%s, %s) error = %v, want %q", c.point, c.spec, err, c.errPart)
		}
	}
	in2 := New(clock.Real(), logrus.NewEntry(logrus.New()), WithPanicAt(func(string) bool { return true }))
	defer in2.Close()
	if _, err := in2.Add(ShimPoint("Delete"), Selector{}, "panic(crash)", "test"); err != nil {
		t.Errorf("panic at a shim point with panics allowed: %v", err)
	}
}

func TestNilInjectorFiresNothing(t *testing.T) {
	var in *Injector
	if in.Active(PointShimUnmount) || in.Fire(context.Background(), PointShimUnmount, Target{}) != nil {
		t.Error("a nil injector fired")
	}
}

func TestToggles(t *testing.T) {
	tg := NewToggles(FixVolatile)
	if !tg.Enabled(FixVolatile) || tg.Enabled(FixStoppingState) {
		t.Fatalf("state = %v", tg.State())
	}
	if err := tg.Set("nonsense", true); err == nil {
		t.Error("setting an unknown fix: want an error")
	}
	fixes, err := ParseFixes("stopping_state, update_outside_lock")
	if err != nil || len(fixes) != 2 {
		t.Fatalf("ParseFixes = %v, %v", fixes, err)
	}
	if _, err := ParseFixes("volatile,bogus"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("ParseFixes with a bad name: %v", err)
	}
	var nilT *Toggles
	if nilT.Enabled(FixVolatile) {
		t.Error("nil toggles report a fix on")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never became true")
		}
		time.Sleep(time.Millisecond)
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"delay(2s)", "2*error(Unavailable)->delay(1s)->off", "30%block", "panic(x)", "error(5, m, n)", "1*exit(KILL)->off", "exit(+3)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseSpec(s)
		if err != nil {
			return
		}
		// What parses prints back to something that parses to the same.
		again, err := ParseSpec(spec.String())
		if err != nil || again.String() != spec.String() {
			t.Fatalf("round trip of %q: %q -> %v, %v", s, spec.String(), again, err)
		}
	})
}

// TestOnHoldSeesDelaysAndBlocks: every delay or block is told to the hold
// observers as it begins, in the held goroutine, and ended when it ends;
// errors and skipped targets hold nothing.
func TestOnHoldSeesDelaysAndBlocks(t *testing.T) {
	tests := []struct {
		name, spec string
		target     Target
		wantHold   string // "" when nothing may hold
	}{
		{"delay", "delay(1h)", Target{ContainerID: "abc"}, "fault f1 (shim.unmount delay(1h0m0s))"},
		{"block", "block", Target{ContainerID: "abc"}, "fault f1 (shim.unmount block)"},
		{"counted delay", "1*delay(1h)->off", Target{ContainerID: "abc"}, "fault f1 (shim.unmount 1*delay(1h0m0s))"},
		{"error", "error(NotFound)", Target{ContainerID: "abc"}, ""},
		{"other target", "block", Target{ContainerID: "def"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, _ := newTestInjector(t, 0.0001)
			info, err := in.Add(PointShimUnmount, Selector{ID: "abc"}, tt.spec, "test")
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var holds []Hold
			open := 0
			in.OnHold(func(h Hold) func() {
				mu.Lock()
				defer mu.Unlock()
				holds = append(holds, h)
				open++
				return func() { mu.Lock(); open--; mu.Unlock() }
			})
			fired := make(chan struct{})
			go func() { in.Fire(context.Background(), PointShimUnmount, tt.target); close(fired) }()
			if tt.wantHold != "" {
				waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return open == 1 })
				// Clearing ends a delay as well as a block.
				if _, err := in.Clear(info.ID); err != nil {
					t.Fatal(err)
				}
			}
			<-fired
			mu.Lock()
			defer mu.Unlock()
			if open != 0 {
				t.Errorf("%d holds still open after the call returned", open)
			}
			if tt.wantHold == "" {
				if len(holds) != 0 {
					t.Errorf("holds %v, want none", holds)
				}
				return
			}
			if len(holds) != 1 || holds[0].String() != tt.wantHold || holds[0].Target.ContainerID != "abc" || holds[0].Spec != info.Spec {
				t.Errorf("holds %+v, want one %q on abc with spec %q", holds, tt.wantHold, info.Spec)
			}
		})
	}
}

// TestEveryFixIsDescribed: the report can say what every fix is.
func TestEveryFixIsDescribed(t *testing.T) {
	for _, f := range Fixes {
		info := f.Info()
		if info.Changes == "" || info.Changes == "unknown fix" || info.Upstream == "" || info.Cost == "" {
			t.Errorf("fix %s: incomplete description %+v", f, info)
		}
	}
}

// TestExitAction: an exit term hands its status and the firing's target to
// the exit handler, once per firing, and the call at the point goes on.
func TestExitAction(t *testing.T) {
	in, _ := newTestInjector(t, 1)
	// Without a handler an exit firing does nothing and fails nothing.
	if _, err := in.Add(PointContainerStatus, Selector{ID: "c1"}, "1*exit(KILL)->off", "test"); err != nil {
		t.Fatal(err)
	}
	if err := in.Fire(context.Background(), PointContainerStatus, Target{ContainerID: "c1"}); err != nil {
		t.Fatalf("exit without a handler: %v", err)
	}
	type exit struct {
		id     string
		status uint32
	}
	var got []exit
	in.SetExitHandler(func(tg Target, status uint32) error {
		got = append(got, exit{tg.ContainerID, status})
		return nil
	})
	if _, err := in.Add(ShimPoint("Update"), Selector{ID: "c1"}, "2*exit(143)->off", "test"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c2", "c1", "c1"} {
		if err := in.Fire(context.Background(), ShimPoint("Update"), Target{ContainerID: id}); err != nil {
			t.Fatalf("exit firing returned %v to the caller", err)
		}
	}
	if want := []exit{{"c1", 143}, {"c1", 143}}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("exits = %v, want %v", got, want)
	}
}
