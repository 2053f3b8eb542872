package server

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/codes"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/shim"
)

// durationBuckets span a healthy call (under a millisecond) to the field's
// stalls (minutes): prometheus' default buckets stop at 10 s, where
// incident 1 only begins.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 180, 300, 600}

// metrics is what the server serves on [metrics] address. It owns its own
// registry (no package-level state): two servers in one process, as the
// A/B runner has, never share or collide. Every duration is scenario time,
// read from the project clock, so a run at --time-scale 0.01 reports the
// durations the field would have seen. A nil *metrics records nothing.
type metrics struct {
	reg   *prometheus.Registry
	clock clock.Clock

	criDuration    *prometheus.HistogramVec // method, code
	statusLockWait *prometheus.HistogramVec // op
	statusLockHold *prometheus.HistogramVec // op
	shimDuration   *prometheus.HistogramVec // method
	faultFirings   *prometheus.CounterVec   // point, action
	unmount        *prometheus.HistogramVec // volatile

	// containerd's own names (pkg/cri/server/metrics.go), so a dashboard
	// made for containerd shows something.
	containerList prometheus.Histogram
	sandboxList   prometheus.Histogram
}

func newMetrics(clk clock.Clock) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), clock: clk}
	hist := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: durationBuckets}, labels)
	}
	m.criDuration = hist("fakecontainerd_cri_request_duration_seconds",
		"CRI request latency in scenario seconds, by method and gRPC code, measured around the whole method as containerd's log cost is.",
		"method", "code")
	m.statusLockWait = hist("fakecontainerd_status_lock_wait_seconds",
		"Time waited for a container's status lock, by operation (the outermost CRI or event method). "+
			"Recorded only with lock_tracking on, and only for writes and contended reads: an uncontended read "+
			"(a healthy ListContainers) is not tracked, so it is not measured.",
		"op")
	m.statusLockHold = hist("fakecontainerd_status_lock_hold_seconds",
		"Time a container's status lock was held, by operation. Recorded only with lock_tracking on, and only "+
			"for writes and reads that had to wait; uncontended reads are not tracked, so not measured.",
		"op")
	m.shimDuration = hist("fakecontainerd_shim_request_duration_seconds",
		"Latency of the daemon's ttrpc calls to the shims, by task method, as the daemon sees them (deadlines included).",
		"method")
	m.faultFirings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fakecontainerd_fault_firings_total",
		Help: "Injected fault firings, by point and action (off, delay, error, block, panic).",
	}, []string{"point", "action"})
	m.unmount = hist("fakecontainerd_rootfs_unmount_duration_seconds",
		"Rootfs unmount time in the shim's Delete, under the process lock (in-process shims only: a process-mode shim "+
			"is another process and does not report it).",
		"volatile")
	m.containerList = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "containerd", Subsystem: "cri", Name: "container_list_seconds",
		Help: "time to list containers (containerd's name; scenario seconds)", Buckets: durationBuckets,
	})
	m.sandboxList = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "containerd", Subsystem: "cri", Name: "sandbox_list_seconds",
		Help: "time to list sandboxes (containerd's name; scenario seconds)", Buckets: durationBuckets,
	})
	m.reg.MustRegister(
		m.criDuration, m.statusLockWait, m.statusLockHold, m.shimDuration, m.faultFirings, m.unmount,
		m.containerList, m.sandboxList,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// observeCRI records one CRI call.
func (m *metrics) observeCRI(method string, code codes.Code, took time.Duration) {
	if m == nil {
		return
	}
	s := took.Seconds()
	m.criDuration.WithLabelValues(method, code.String()).Observe(s)
	switch method {
	case "ListContainers":
		m.containerList.Observe(s)
	case "ListPodSandbox":
		m.sandboxList.Observe(s)
	}
}

func (m *metrics) statusLockWaited(op string, d time.Duration) {
	m.statusLockWait.WithLabelValues(op).Observe(d.Seconds())
}

func (m *metrics) statusLockHeld(op string, d time.Duration) {
	m.statusLockHold.WithLabelValues(op).Observe(d.Seconds())
}

// Start is shim.CallObserver: it times one daemon-side call to a shim.
func (m *metrics) Start(id, method string) func() {
	start := m.clock.Now()
	return func() { m.shimDuration.WithLabelValues(method).Observe(m.clock.Since(start).Seconds()) }
}

// unmounted is the in-process shims' unmount hook.
func (m *metrics) unmounted(id string, volatile bool, took time.Duration) {
	m.unmount.WithLabelValues(strconv.FormatBool(volatile)).Observe(took.Seconds())
}

// faultFired counts a firing; the action label is the term's kind, without
// its count, percentage or arguments, so the label set stays small.
func (m *metrics) faultFired(f faults.Firing) {
	m.faultFirings.WithLabelValues(f.Point, actionKind(f.Action)).Inc()
}

// actionKind turns a term ("2*30%delay(2s, 500ms)") into its kind ("delay").
func actionKind(term string) string {
	s := term
	if i := strings.IndexByte(s, '*'); i >= 0 && !strings.ContainsRune(s[:i], '(') {
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, '%'); i >= 0 && !strings.ContainsRune(s[:i], '(') {
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, '('); i >= 0 {
		s = s[:i]
	}
	return s
}

// callObservers calls every observer of a daemon-side shim call: the lock
// tracker (for blame) and the metrics, either of which may be off.
type callObservers []shim.CallObserver

func (cs callObservers) Start(id, method string) func() {
	dones := make([]func(), len(cs))
	for i, c := range cs {
		dones[i] = c.Start(id, method)
	}
	return func() {
		for _, d := range dones {
			d()
		}
	}
}

// shimCallObserver composes the tracker and the metrics; nil if neither.
func (c *criService) shimCallObserver() shim.CallObserver {
	var cs callObservers
	if c.tracker != nil {
		cs = append(cs, c.tracker)
	}
	if c.metrics != nil {
		cs = append(cs, c.metrics)
	}
	switch len(cs) {
	case 0:
		return nil
	case 1:
		return cs[0]
	}
	return cs
}

// initMetrics makes the metrics and hooks them to the fault injector and
// the lock tracker. The shims' hooks are set with the shim manager's
// config in New.
func (c *criService) initMetrics() {
	m := newMetrics(c.clock)
	c.metrics = m
	c.faults.Observe(m.faultFired)
	if c.tracker != nil {
		c.tracker.statusWaited, c.tracker.statusHeld = m.statusLockWaited, m.statusLockHeld
	}
}

// MetricsRegisterer is the registry served on [metrics] address, for the
// metrics of code running next to the server (the scenario runner's PLEG
// probe registers kubelet's PLEG metrics there); nil when metrics are off.
func (s *Server) MetricsRegisterer() prometheus.Registerer {
	if s.cri.metrics == nil {
		return nil
	}
	return s.cri.metrics.reg
}

// MetricsAddress is where metrics are served ("" when off): the socket
// path, or the loopback host:port actually bound.
func (s *Server) MetricsAddress() string { return s.metricsEndpoint.Address() }

// DebugAddress is where /debug/pprof is served ("" when off).
func (s *Server) DebugAddress() string { return s.debugEndpoint.Address() }
