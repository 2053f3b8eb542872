// Package plegmetrics is kubelet's PLEG metrics, under kubelet's names,
// for the scenario driver's PLEG probe: a dashboard or alert written for
// kubelet reads a fakecontainerd run unchanged. It needs only a
// prometheus.Registerer, so the driver does not import the server.
//
// Times are the caller's (scenario time when the driver runs on the
// project clock), so last_seen is a scenario timestamp and runs ahead of
// the wall clock when the time scale is below 1.
package plegmetrics

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Names, as kubelet's pkg/kubelet/metrics defines them.
const (
	RelistDurationName = "kubelet_pleg_relist_duration_seconds"
	RelistIntervalName = "kubelet_pleg_relist_interval_seconds"
	LastSeenName       = "kubelet_pleg_last_seen_seconds"
)

// buckets are kubelet's (prometheus' defaults) extended past 10 s up to
// the PLEG threshold and beyond, where this project's incidents live.
var buckets = slices.Concat(prometheus.DefBuckets, []float64{30, 60, 120, 180, 300, 600})

// Metrics records relists. A nil *Metrics records nothing, so a driver
// can call it unconditionally.
type Metrics struct {
	relistDuration prometheus.Histogram
	relistInterval prometheus.Histogram
	lastSeen       prometheus.Gauge

	// lastRelist is kubelet's relistTime: the start of the last relist
	// whose GetPods succeeded, in unix nanoseconds (0: none yet).
	lastRelist atomic.Int64
}

// New makes the three metrics and registers them with reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		relistDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: RelistDurationName, Help: "Duration in seconds for relisting pods in PLEG.", Buckets: buckets,
		}),
		relistInterval: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: RelistIntervalName, Help: "Interval in seconds between relisting in PLEG.", Buckets: buckets,
		}),
		lastSeen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: LastSeenName, Help: "Timestamp in seconds when PLEG was last seen active.",
		}),
	}
	for _, c := range []prometheus.Collector{m.relistDuration, m.relistInterval, m.lastSeen} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// RelistStarted is called as a relist begins, at now: like kubelet, it
// observes the interval since the last successful relist's start.
func (m *Metrics) RelistStarted(now time.Time) {
	if m == nil {
		return
	}
	if last := m.lastRelist.Load(); last != 0 {
		m.relistInterval.Observe(now.Sub(time.Unix(0, last)).Seconds())
	}
}

// Relisted is kubelet's updateRelistTime: GetPods succeeded for the relist
// that started at timestamp. PLEG is seen active then (kubelet copies
// relistTime to the gauge in its periodic Healthy(); setting it here gives
// the same value without waiting for the next health check).
func (m *Metrics) Relisted(timestamp time.Time) {
	if m == nil {
		return
	}
	m.lastRelist.Store(timestamp.UnixNano())
	m.lastSeen.Set(float64(timestamp.UnixNano()) / 1e9)
}

// RelistDone observes a relist's duration, failed or not, as kubelet's
// deferred observation does.
func (m *Metrics) RelistDone(took time.Duration) {
	if m == nil {
		return
	}
	m.relistDuration.Observe(took.Seconds())
}
