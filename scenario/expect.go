package scenario

import (
	"fmt"
	"strings"
	"time"
)

// check returns one line per expectation the stats do not meet.
func (e Expect) check(s Stats) []string {
	var failed []string
	fail := func(format string, args ...any) { failed = append(failed, fmt.Sprintf(format, args...)) }
	if e.PLEGHealthy != nil && s.Healthy() != *e.PLEGHealthy {
		fail("pleg_healthy: got %v, want %v (longest without a successful relist %v; threshold %v)",
			s.Healthy(), *e.PLEGHealthy, round(s.MaxPLEGLastSeen), s.Threshold)
	}
	if e.PLEGHealthyAtEnd != nil && s.HealthyAtEnd() != *e.PLEGHealthyAtEnd {
		fail("pleg_healthy_at_end: got %v, want %v (pleg last seen %v before the end; threshold %v)",
			s.HealthyAtEnd(), *e.PLEGHealthyAtEnd, round(s.LastSeenAtEnd), s.Threshold)
	}
	for _, r := range []struct {
		name string
		got  time.Duration
		want Range
	}{
		{"pleg_last_seen", s.MaxPLEGLastSeen, e.PLEGLastSeen},
		{"relist", s.MaxRelist, e.Relist},
		{"list_containers", s.Max("ListContainers"), e.ListContainers},
		{"update_resources", s.Max("UpdateContainerResources"), e.UpdateResources},
		{"relist_p99", s.RelistP99, e.RelistP99},
		{"relist_p50", s.RelistP50, e.RelistP50},
		{"exec_sync", s.Max("ExecSync"), e.ExecSync},
		{"stop_container", s.Max("StopContainer"), e.StopContainer},
	} {
		if r.want.Min != nil && r.got < r.want.Min.D() {
			fail("%s: longest %v, want at least %v", r.name, round(r.got), r.want.Min.D())
		}
		if r.want.Max != nil && r.got > r.want.Max.D() {
			fail("%s: longest %v, want at most %v", r.name, round(r.got), r.want.Max.D())
		}
	}
	if e.CPUBusy.Min != nil && s.CPUBusy < *e.CPUBusy.Min {
		fail("cpu_busy: %.2f of the cores busy, want at least %.2f", s.CPUBusy, *e.CPUBusy.Min)
	}
	if e.CPUBusy.Max != nil && s.CPUBusy > *e.CPUBusy.Max {
		fail("cpu_busy: %.2f of the cores busy, want at most %.2f", s.CPUBusy, *e.CPUBusy.Max)
	}
	if e.UnknownStates != nil && len(s.Unknown) != *e.UnknownStates {
		fail("unknown_states: %d containers seen UNKNOWN, want %d", len(s.Unknown), *e.UnknownStates)
	}
	for _, want := range e.Errors {
		if len(matching(s.Errors, want)) == 0 {
			fail("errors: no error contains %q (saw %s)", want, errorList(s.Errors))
		}
	}
	for _, unwanted := range e.NoErrors {
		if m := matching(s.Errors, unwanted); len(m) > 0 {
			fail("no_errors: %q matches %s", unwanted, errorList(m))
		}
	}
	if e.MaxErrors != nil && s.ErrorTotal() > *e.MaxErrors {
		fail("max_errors: %d failed calls, want at most %d (%s)", s.ErrorTotal(), *e.MaxErrors, errorList(s.Errors))
	}
	return failed
}

func matching(errs []ErrorCount, sub string) []ErrorCount {
	var out []ErrorCount
	for _, e := range errs {
		if strings.Contains(e.String(), sub) {
			out = append(out, e)
		}
	}
	return out
}

func errorList(errs []ErrorCount) string {
	if len(errs) == 0 {
		return "none"
	}
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = fmt.Sprintf("%d× %q", e.Count, e.String())
	}
	return strings.Join(parts, ", ")
}

// round keeps durations readable in messages.
func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
