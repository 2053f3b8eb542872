package scenario

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/server"
)

// Timeline is what happened during one variant's run, in scenario time
// since time 0 (the moment the workload's containers start): enough to
// draw the incident (html.go) without its logs.
type Timeline struct {
	// Duration is how long the driver ran.
	Duration  time.Duration
	Threshold time.Duration
	Calls     []CallSpan
	Relists   []RelistSpan
	Locks     []LockSpan
	Unmounts  []UnmountSpan
	// Unhealthy are the windows in which kubelet judged PLEG unhealthy.
	Unhealthy []Window
	Blame     []BlameChain
	// Containers names the workload's containers by id, for people.
	Containers map[string]ContainerInfo
}

// ContainerInfo is what the report says about a container besides its id.
type ContainerInfo struct {
	// Pod and Name are the pod's and the container's names.
	Pod, Name string
	// ExitAt and ExitCode are the scripted exit, when it has one (ExitAt
	// in timeline time: since time 0).
	ExitAt   time.Duration
	ExitCode int
	Exits    bool
}

// Label is "pod/container".
func (c ContainerInfo) Label() string { return c.Pod + "/" + c.Name }

// CallSpan is one CRI call the driver made.
type CallSpan struct {
	Method     string
	Start, End time.Duration
	Code       codes.Code
	// InFlight: the call had not returned when the run ended (End is
	// the end of the run).
	InFlight bool
}

// RelistSpan is one PLEG relist; OK when its GetPods succeeded.
type RelistSpan struct {
	Start, End time.Duration
	OK         bool
}

// LockSpan is one status lock held.
type LockSpan struct {
	Container, Op string
	From, To      time.Duration
}

// UnmountSpan is one rootfs unmount in a shim's Delete.
type UnmountSpan struct {
	Container string
	Volatile  bool
	From, To  time.Duration
}

// Window is a stretch of scenario time.
type Window struct{ From, To time.Duration }

// BlameChain is one wait-for chain blame reported, seen Count times.
// Samples that differ only in who waits (which operations, how many
// callers) and in durations are one chain.
type BlameChain struct {
	// Chain is the text as it read when its hold was longest.
	Chain string
	// Count is how many samples showed it.
	Count       int
	First, Last time.Duration
	LongestHeld time.Duration
	// Holder is what held at the longest hold: the last "held ... by"
	// of the chain, e.g. "shim Delete, unmounting rootfs ...".
	Holder string
	// Waiters are the operations seen waiting, first seen first, each
	// with the most callers a sample showed.
	Waiters         []string
	waiterMax       map[string]int
	normalizedChain string
}

// blameSamplePeriod is how often, in scenario time, the runner asks the
// server's lock tracker for its chains: a 2 min hold is seen many times,
// a sub-second one possibly never (those do not make incidents).
const blameSamplePeriod = 5 * time.Second

// timelineRecorder collects a variant's timeline. It is the server's
// TimelineObserver and the driver recorder's sink; it keeps absolute
// times and ignores everything before time 0 (set-up) and after the run.
type timelineRecorder struct {
	mu       sync.Mutex
	t0       time.Time // zero until time 0
	frozen   bool
	calls    []CallSpan
	relists  []RelistSpan
	locks    []LockSpan
	unmounts []UnmountSpan
	chains   map[string]*BlameChain
	// containers are the workload's, as the driver created them.
	containers map[string]ContainerInfo
	done       *Timeline
}

var _ server.TimelineObserver = (*timelineRecorder)(nil)

func newTimelineRecorder() *timelineRecorder {
	return &timelineRecorder{chains: map[string]*BlameChain{}, containers: map[string]ContainerInfo{}}
}

// created records a workload container's names and scripted exit.
func (r *timelineRecorder) created(id string, info ContainerInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.containers[id] = info
}

// begin marks time 0.
func (r *timelineRecorder) begin(t0 time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t0 = t0
}

// since is t relative to time 0; false before time 0 or once frozen.
func (r *timelineRecorder) sinceLocked(t time.Time) (time.Duration, bool) {
	if r == nil || r.t0.IsZero() || r.frozen {
		return 0, false
	}
	return t.Sub(r.t0), true
}

func (r *timelineRecorder) call(method string, start, end time.Time, err error) {
	r.addCall(CallSpan{Method: method, Code: status.Code(err)}, start, end)
}

// inFlight records a call still running as the run ends.
func (r *timelineRecorder) inFlight(method string, start, now time.Time) {
	r.addCall(CallSpan{Method: method, InFlight: true}, start, now)
}

// addCall records span from start to end, unless it began before time 0.
func (r *timelineRecorder) addCall(span CallSpan, start, end time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sinceLocked(start)
	if !ok || s < 0 {
		return
	}
	span.Start, span.End = s, end.Sub(r.t0)
	r.calls = append(r.calls, span)
}

func (r *timelineRecorder) relist(start, end time.Time, ok bool) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, in := r.sinceLocked(start)
	if !in || s < 0 {
		return
	}
	r.relists = append(r.relists, RelistSpan{Start: s, End: end.Sub(r.t0), OK: ok})
}

// StatusLockHeld is server.TimelineObserver. A hold that began during
// set-up but ends after time 0 is clipped to 0.
func (r *timelineRecorder) StatusLockHeld(id, op string, from, to time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	end, ok := r.sinceLocked(to)
	if !ok || end < 0 {
		return
	}
	r.locks = append(r.locks, LockSpan{Container: id, Op: op, From: max(from.Sub(r.t0), 0), To: end})
}

// Unmounted is server.TimelineObserver.
func (r *timelineRecorder) Unmounted(id string, volatile bool, from time.Time, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	end, ok := r.sinceLocked(from.Add(took))
	if !ok || end < 0 {
		return
	}
	r.unmounts = append(r.unmounts, UnmountSpan{Container: id, Volatile: volatile, From: max(from.Sub(r.t0), 0), To: end})
}

// Durations as blame prints them ("7.7s", "2m0s", "120ms") and waiter
// counts, normalized out of a chain so the same chain sampled at
// different moments counts as one.
var (
	chainDuration = regexp.MustCompile(`\b\d+(?:\.\d+)?(?:h|ms|µs|us|ns|m|s)(?:\d+(?:\.\d+)?(?:ms|µs|us|ns|m|s))*\b`)
	chainCallers  = regexp.MustCompile(`\(\d+ callers\)`)
	chainHeld     = regexp.MustCompile(`held (\S+) by `)
	// chainInFault is blame's line for calls held in a fault: "<waiters>
	// wait(s) inside fault f1 (<point> <spec>) on <object>, held up to <d>".
	chainInFault = regexp.MustCompile(` waits? inside (.*), held up to ([^,]+?)(?:,|\.$)`)
	// chainVerb ends a chain's subject (who waits): blame's chains read
	// "<waiters> wait(s) on <lock>, held ..." or "... wait(s) inside
	// fault ...".
	chainVerb    = regexp.MustCompile(` waits? (?:on|inside) `)
	chainWaiter  = regexp.MustCompile(`^(.*?)(?: \((\d+) callers\))?$`)
	chainJoiners = regexp.MustCompile(`, | and `)
)

// normalizeChain is a chain's grouping key: what is waited on and who holds
// it, without who waits or for how long.
func normalizeChain(c string) string {
	if loc := chainVerb.FindStringIndex(c); loc != nil {
		c = "… wait" + c[loc[0]+len(" wait"):]
		c = strings.Replace(c, "… waits", "… wait", 1)
	}
	return chainCallers.ReplaceAllString(chainDuration.ReplaceAllString(c, "…"), "(n callers)")
}

// chainWaiters reads a chain's subject: the operations waiting, each with
// its number of callers.
func chainWaiters(c string) (ops []string, callers map[string]int) {
	loc := chainVerb.FindStringIndex(c)
	if loc == nil {
		return nil, nil
	}
	callers = map[string]int{}
	for _, part := range chainJoiners.Split(c[:loc[0]], -1) {
		m := chainWaiter.FindStringSubmatch(part)
		n := 1
		if m[2] != "" {
			n, _ = strconv.Atoi(m[2])
		}
		if _, ok := callers[m[1]]; !ok {
			ops = append(ops, m[1])
		}
		callers[m[1]] = max(callers[m[1]], n)
	}
	return ops, callers
}

// longestHeld is the longest "held X by Y" in a chain and Y, what held:
// the text up to the next ", which" or the chain's end.
func longestHeld(c string) (time.Duration, string) {
	var longest time.Duration
	holder := ""
	for _, m := range chainHeld.FindAllStringSubmatchIndex(c, -1) {
		d, err := time.ParseDuration(c[m[2]:m[3]])
		if err != nil || d < longest {
			continue
		}
		rest := c[m[1]:]
		if i := strings.Index(rest, ", which "); i >= 0 {
			rest = rest[:i]
		}
		longest, holder = d, strings.TrimSuffix(rest, ".")
	}
	if m := chainInFault.FindStringSubmatch(c); m != nil {
		if d, err := time.ParseDuration(m[2]); err == nil && d >= longest {
			longest, holder = d, m[1]
		}
	}
	return longest, holder
}

// sawChains records one blame sample taken at now.
func (r *timelineRecorder) sawChains(now time.Time, chains []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.sinceLocked(now)
	if !ok || at < 0 {
		return
	}
	for _, c := range chains {
		key := normalizeChain(c)
		held, holder := longestHeld(c)
		bc, ok := r.chains[key]
		if !ok {
			bc = &BlameChain{Chain: c, First: at, LongestHeld: held, Holder: holder, normalizedChain: key, waiterMax: map[string]int{}}
			r.chains[key] = bc
		}
		bc.Count++
		bc.Last = at
		if held > bc.LongestHeld {
			bc.LongestHeld, bc.Chain, bc.Holder = held, c, holder
		}
		ops, callers := chainWaiters(c)
		for _, op := range ops {
			if _, seen := bc.waiterMax[op]; !seen {
				bc.Waiters = append(bc.Waiters, op)
			}
			bc.waiterMax[op] = max(bc.waiterMax[op], callers[op])
		}
	}
}

// sampleBlame samples srv's blame chains every blameSamplePeriod until ctx
// ends.
func (r *timelineRecorder) sampleBlame(ctx context.Context, clk clock.Clock, srv *server.Server) {
	for {
		if clk.Sleep(ctx, blameSamplePeriod) != nil {
			return
		}
		if rep, ok := srv.Blame(); ok && len(rep.Chains) > 0 {
			r.sawChains(clk.Now(), rep.Chains)
		}
	}
}

// result is the timeline finish made; nil if the run never got there.
func (r *timelineRecorder) result() *Timeline {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// finish freezes the recorder and builds the timeline; the driver's
// stats give its length and the health windows (their times count from
// the driver's start, driverStart after time 0).
func (r *timelineRecorder) finish(s Stats, driverStart time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = true
	tl := &Timeline{
		Duration: driverStart + s.Elapsed, Threshold: s.Threshold,
		Calls:   append([]CallSpan(nil), r.calls...),
		Relists: append([]RelistSpan(nil), r.relists...),
		Locks:   append([]LockSpan(nil), r.locks...), Unmounts: append([]UnmountSpan(nil), r.unmounts...),
	}
	var from time.Duration
	unhealthy := false
	for _, h := range s.Transitions {
		at := driverStart + h.At
		if !h.Healthy && !unhealthy {
			from, unhealthy = at, true
		} else if h.Healthy && unhealthy {
			tl.Unhealthy = append(tl.Unhealthy, Window{From: from, To: at})
			unhealthy = false
		}
	}
	if unhealthy {
		tl.Unhealthy = append(tl.Unhealthy, Window{From: from, To: tl.Duration})
	}
	for _, c := range r.chains {
		bc := *c
		bc.Waiters = make([]string, len(c.Waiters))
		for i, op := range c.Waiters {
			bc.Waiters[i] = op
			if n := c.waiterMax[op]; n > 1 {
				bc.Waiters[i] = fmt.Sprintf("%s (up to %d callers)", op, n)
			}
		}
		tl.Blame = append(tl.Blame, bc)
	}
	tl.Containers = maps.Clone(r.containers)
	sort.Slice(tl.Blame, func(i, j int) bool {
		a, b := tl.Blame[i], tl.Blame[j]
		if a.First != b.First {
			return a.First < b.First
		}
		return a.normalizedChain < b.normalizedChain
	})
	r.done = tl
}
