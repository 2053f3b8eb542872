package command

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// TestIdle: only exec-form commands that do nothing but wait are idle, and
// for the finite ones the interpreter agrees: it exits 0, silently, after
// the same time on the clock.
func TestIdle(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		idle    bool
		d       time.Duration
		forever bool
	}{
		{[]string{"/pause"}, true, 0, true},
		{[]string{"pause"}, true, 0, true},
		{[]string{"/agnhost", "pause"}, true, 0, true},
		{[]string{"sleep", "infinity"}, true, 0, true},
		{[]string{"/bin/sleep", "3600"}, true, time.Hour, false},
		{[]string{"sleep", "1m", "30"}, true, 90 * time.Second, false},
		{[]string{"sleep", "0.5"}, true, 500 * time.Millisecond, false},
		{[]string{"sleep", "10", "inf"}, true, 0, true},
		{[]string{"sleep"}, false, 0, false},              // prints "missing operand", exits 1
		{[]string{"sleep", "soon"}, false, 0, false},      // prints "invalid number", exits 1
		{[]string{"sleep", "-1"}, false, 0, false},        // likewise
		{[]string{"agnhost", "netexec"}, false, 0, false}, // not modelled
		{[]string{"sh", "-c", "sleep 10"}, false, 0, false},
		{[]string{"nginx"}, false, 0, false},
	} {
		d, forever, ok := Parse(tc.args).Idle()
		if ok != tc.idle || d != tc.d || forever != tc.forever {
			t.Errorf("%q: Idle() = %v, %v, %v; want %v, %v, %v", tc.args, d, forever, ok, tc.d, tc.forever, tc.idle)
		}
		if !ok || forever {
			continue
		}
		// The interpreter, on a clock 10,000x faster: same silence, same
		// status, at least the same time.
		clk, err := clock.New(1e-4)
		if err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		start := clk.Now()
		code, err := Parse(tc.args).Run(context.Background(), Env{Clock: clk, Stdout: &out, Stderr: &errOut})
		if err != nil || code != 0 || out.String() != "" || errOut.String() != "" {
			t.Errorf("%q: Run = %d, %v, stdout %q, stderr %q; want 0, silent", tc.args, code, err, out.String(), errOut.String())
		}
		if took := clk.Since(start); took < tc.d {
			t.Errorf("%q: Run took %v on the clock, less than Idle's %v", tc.args, took, tc.d)
		}
	}
}
