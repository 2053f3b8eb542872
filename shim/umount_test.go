package shim

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fakecontainerd/fakecontainerd/faults"
)

// newFaultFixture is newFixture whose in-process shims fire faults from an
// injector on the fixture's clock.
func newFaultFixture(t *testing.T, scale float64) (*fixture, *faults.Injector) {
	t.Helper()
	f := newFixture(t, scale)
	f.m.Close()
	log := logrus.New()
	log.SetOutput(io.Discard)
	f.faults = faults.New(f.clock, logrus.NewEntry(log))
	t.Cleanup(f.faults.Close)
	f.m = f.manager(t)
	return f, f.faults
}

// TestUmount2DelayIsPaidTwice: runc-shim's mount.UnmountAll calls umount2
// until EINVAL, so a delay injected on the syscall (the field's strace
// delay_enter=60s) holds Delete twice as long, while a delay on the whole
// unmount is paid once.
func TestUmount2DelayIsPaidTwice(t *testing.T) {
	cases := []struct {
		point   string
		firings uint64
		atLeast time.Duration
	}{
		{faults.PointShimUmount2, 2, 120 * time.Second},
		{faults.PointShimUnmount, 1, 60 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.point, func(t *testing.T) {
			// 1 scenario minute is 60 ms.
			f, in := newFaultFixture(t, 0.001)
			if _, err := in.Add(c.point, faults.Selector{ID: "c1"}, "delay(60s)", "test"); err != nil {
				t.Fatal(err)
			}
			tk := f.create(t, "c1", nil, "volatile")
			if err := tk.Kill(context.Background(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			ch, _ := tk.Wait(context.Background())
			<-ch
			start := f.clock.Now()
			if _, err := tk.Delete(context.Background(), WithProcessKill); err != nil {
				t.Fatalf("delete: %v", err)
			}
			took := f.clock.Since(start)
			if took < c.atLeast {
				t.Errorf("Delete with delay(60s) at %s took %v of scenario time, want at least %v", c.point, took, c.atLeast)
			}
			if n := in.Counts()[c.point]; n != c.firings {
				t.Errorf("%s fired %d times in one Delete, want %d", c.point, n, c.firings)
			}
		})
	}
}
