package scenario

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// CallStats summarises the calls of one CRI method.
type CallStats struct {
	Calls  int           `json:"calls"`
	Errors int           `json:"errors"`
	Max    time.Duration `json:"-"`
}

// ErrorCount is one kind of error callers saw, with how often.
type ErrorCount struct {
	Method string
	Code   codes.Code
	// Message has container and sandbox ids replaced by <id>, so the same
	// failure on many containers counts as one kind.
	Message string
	Count   int
}

// String is the form expectations match against.
func (e ErrorCount) String() string { return fmt.Sprintf("%s: %s: %s", e.Method, e.Code, e.Message) }

// HealthEvent is a PLEG health transition as kubelet would judge it.
type HealthEvent struct {
	// At is scenario time since the driver started.
	At       time.Duration
	Healthy  bool
	LastSeen time.Duration
	Message  string
}

// Stats is what the driver saw, in scenario time.
type Stats struct {
	Elapsed       time.Duration
	Relists       int
	FailedRelists int
	// MaxRelist is the longest relist, one still running at the snapshot
	// included.
	MaxRelist time.Duration
	// MaxPLEGLastSeen is the longest time without a successful relist:
	// the largest now - relistTime kubelet's Healthy() could have seen.
	MaxPLEGLastSeen time.Duration
	// LastSeenAtEnd is now - relistTime at the snapshot.
	LastSeenAtEnd time.Duration
	Threshold     time.Duration
	// RelistP99 is the 99th percentile of the relists' durations
	// (kubelet_pleg_relist_duration_seconds' p99).
	RelistP99 time.Duration
	// RelistP50 is their median: the steady relist, where the first
	// relist's inspection of every pod weighs in the p99 of a short run.
	RelistP50 time.Duration
	// CPUBusy is the share of the node's cores the modelled work kept busy
	// during the run (0..1; 0 with the CPU model off).
	CPUBusy float64
	Calls   map[string]CallStats
	// Unknown lists the containers ever reported in CONTAINER_UNKNOWN.
	Unknown     []string
	Errors      []ErrorCount
	Transitions []HealthEvent
}

// Healthy reports whether PLEG stayed within its threshold all along.
func (s Stats) Healthy() bool { return s.MaxPLEGLastSeen <= s.Threshold }

// HealthyAtEnd reports whether PLEG was healthy when the snapshot was taken.
func (s Stats) HealthyAtEnd() bool { return s.LastSeenAtEnd <= s.Threshold }

// Max is the longest call of a method (0 if none was made).
func (s Stats) Max(method string) time.Duration { return s.Calls[method].Max }

// ErrorTotal is the number of failed calls.
func (s Stats) ErrorTotal() int {
	n := 0
	for _, e := range s.Errors {
		n += e.Count
	}
	return n
}

type errKey struct {
	method string
	code   codes.Code
	msg    string
}

type inflightCall struct {
	method string
	start  time.Time
}

// recorder collects the driver's observations. Once frozen it ignores
// everything, so calls that end because the run is being torn down do not
// count.
type recorder struct {
	clock     clock.Clock
	threshold time.Duration
	start     time.Time

	mu        sync.Mutex
	frozen    bool
	nextToken int
	inflight  map[int]inflightCall
	calls     map[string]*CallStats
	errs      map[errKey]int
	unknown   map[string]bool
	relists   int
	failed    int
	maxRelist time.Duration
	// relistTimes are every relist's duration, for the p99.
	relistTimes []time.Duration
	relistStart time.Time // zero when no relist runs
	relistTime  time.Time // start of the last relist whose GetPods succeeded
	maxAge      time.Duration
	unhealthy   bool
	transitions []HealthEvent
	// timeline, if set, also gets every call and relist with its times
	// (the A/B runner's HTML report); nil-safe.
	timeline *timelineRecorder
}

func newRecorder(clk clock.Clock, threshold time.Duration) *recorder {
	return &recorder{
		clock: clk, threshold: threshold, start: clk.Now(),
		inflight: map[int]inflightCall{}, calls: map[string]*CallStats{}, errs: map[errKey]int{}, unknown: map[string]bool{},
	}
}

// restart makes the driver's start now; calls recorded before (pods
// created ahead of the PLEG) keep their counts.
func (r *recorder) restart() {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.start = now
}

// startedAt is the driver's start, which restart moved.
func (r *recorder) startedAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.start
}

func (r *recorder) begin(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextToken++
	r.inflight[r.nextToken] = inflightCall{method: method, start: r.clock.Now()}
	return r.nextToken
}

func (r *recorder) end(token int, err error) time.Duration {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.inflight[token]
	if !ok {
		return 0
	}
	delete(r.inflight, token)
	took := now.Sub(c.start)
	if r.frozen {
		return took
	}
	r.timeline.call(c.method, c.start, now, err)
	cs := r.callStats(c.method)
	cs.Calls++
	cs.Max = max(cs.Max, took)
	if err != nil {
		cs.Errors++
		st := status.Convert(err)
		r.errs[errKey{method: c.method, code: st.Code(), msg: idPattern.ReplaceAllString(st.Message(), "<id>")}]++
	}
	return took
}

// idPattern matches the 64-hex ids of containers and sandboxes.
var idPattern = regexp.MustCompile(`\b[0-9a-f]{64}\b`)

func (r *recorder) callStats(method string) *CallStats {
	cs, ok := r.calls[method]
	if !ok {
		cs = &CallStats{}
		r.calls[method] = cs
	}
	return cs
}

func (r *recorder) sawUnknown(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.frozen {
		r.unknown[id] = true
	}
}

func (r *recorder) relistBegin() time.Time {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.relistStart = now
	return now
}

func (r *recorder) relistEnd(ok bool) time.Duration {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	took := now.Sub(r.relistStart)
	r.relistStart = time.Time{}
	if r.frozen {
		return took
	}
	r.timeline.relist(now.Add(-took), now, ok)
	r.relists++
	if !ok {
		r.failed++
	}
	r.maxRelist = max(r.maxRelist, took)
	r.relistTimes = append(r.relistTimes, took)
	return took
}

// relisted is kubelet's updateRelistTime(timestamp). The age just before
// the update is the peak of the interval it ends, so the maximum is exact,
// not sampled.
func (r *recorder) relisted(timestamp time.Time) {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frozen {
		return
	}
	r.maxAge = max(r.maxAge, now.Sub(r.lastSeenBaseLocked()))
	r.relistTime = timestamp
}

// lastSeenBaseLocked is relistTime, or the driver's start before the first
// successful relist (kubelet says "pleg has yet to be successful" then).
func (r *recorder) lastSeenBaseLocked() time.Time {
	if r.relistTime.IsZero() {
		return r.start
	}
	return r.relistTime
}

// checkHealth is kubelet's Healthy(), called periodically; it returns a
// transition when the verdict changes.
func (r *recorder) checkHealth() (HealthEvent, bool) {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	age := now.Sub(r.lastSeenBaseLocked())
	if !r.frozen {
		r.maxAge = max(r.maxAge, age)
	}
	unhealthy := age > r.threshold
	if unhealthy == r.unhealthy || r.frozen {
		return HealthEvent{}, false
	}
	r.unhealthy = unhealthy
	ev := HealthEvent{At: now.Sub(r.start), Healthy: !unhealthy, LastSeen: age}
	if unhealthy {
		ev.Message = fmt.Sprintf("PLEG is not healthy: pleg was last seen active %v ago; threshold is %v", age.Round(10*time.Millisecond), r.threshold)
	} else {
		ev.Message = fmt.Sprintf("PLEG is healthy again: pleg was last seen active %v ago; threshold is %v", age.Round(10*time.Millisecond), r.threshold)
	}
	r.transitions = append(r.transitions, ev)
	return ev, true
}

// snapshot reports everything so far, counting calls and a relist still
// in flight as lasting until now. With freeze, later observations are
// ignored.
func (r *recorder) snapshot(freeze bool) Stats {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{
		Elapsed: now.Sub(r.start), Relists: r.relists, FailedRelists: r.failed, MaxRelist: r.maxRelist,
		MaxPLEGLastSeen: max(r.maxAge, now.Sub(r.lastSeenBaseLocked())), LastSeenAtEnd: now.Sub(r.lastSeenBaseLocked()),
		Threshold: r.threshold,
		Calls:     map[string]CallStats{}, Transitions: append([]HealthEvent(nil), r.transitions...),
	}
	if !r.relistStart.IsZero() {
		s.MaxRelist = max(s.MaxRelist, now.Sub(r.relistStart))
	}
	for m, cs := range r.calls {
		s.Calls[m] = *cs
	}
	s.RelistP99 = percentile(r.relistTimes, 0.99)
	s.RelistP50 = percentile(r.relistTimes, 0.5)
	for _, c := range r.inflight {
		if freeze && !r.frozen {
			// A call stuck at the end is the picture's point; it
			// would otherwise never reach the timeline.
			r.timeline.inFlight(c.method, c.start, now)
		}
		cs := s.Calls[c.method]
		cs.Max = max(cs.Max, now.Sub(c.start))
		s.Calls[c.method] = cs
	}
	for id := range r.unknown {
		s.Unknown = append(s.Unknown, id)
	}
	sort.Strings(s.Unknown)
	for k, n := range r.errs {
		s.Errors = append(s.Errors, ErrorCount{Method: k.method, Code: k.code, Message: k.msg, Count: n})
	}
	sort.Slice(s.Errors, func(i, j int) bool {
		a, b := s.Errors[i], s.Errors[j]
		if a.Method != b.Method {
			return a.Method < b.Method
		}
		return a.Message < b.Message
	})
	if freeze {
		r.frozen = true
	}
	return s
}

// percentile is the q-quantile of ds (nearest rank); 0 for none.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
