package plegmetrics

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRelistMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg); err == nil {
		t.Error("registering twice with one registry succeeded")
	}
	t0 := time.Unix(1000, 0)
	// The first relist has no interval; its GetPods succeeds.
	m.RelistStarted(t0)
	m.Relisted(t0)
	m.RelistDone(300 * time.Millisecond)
	// The next starts 1.3 s later and fails: PLEG is not seen again.
	m.RelistStarted(t0.Add(1300 * time.Millisecond))
	m.RelistDone(90 * time.Second)
	// The third's interval runs from the last success.
	m.RelistStarted(t0.Add(92 * time.Second))

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
		switch mf.GetName() {
		case RelistDurationName:
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 2 || !near(h.GetSampleSum(), 90.3) {
				t.Errorf("relist duration: count %d sum %v, want 2 and 90.3", h.GetSampleCount(), h.GetSampleSum())
			}
		case RelistIntervalName:
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 2 || !near(h.GetSampleSum(), 93.3) {
				t.Errorf("relist interval: count %d sum %v, want 2 and 93.3", h.GetSampleCount(), h.GetSampleSum())
			}
		case LastSeenName:
			if got := mf.GetMetric()[0].GetGauge().GetValue(); got != 1000 {
				t.Errorf("last seen = %v, want 1000", got)
			}
		}
	}
	for _, name := range []string{RelistDurationName, RelistIntervalName, LastSeenName} {
		if !seen[name] {
			t.Errorf("%s not gathered", name)
		}
	}

	var off *Metrics // a driver without metrics calls these too
	off.RelistStarted(t0)
	off.Relisted(t0)
	off.RelistDone(time.Second)
}
