package server

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/shim"
	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
	"github.com/fakecontainerd/fakecontainerd/store/metadata"
)

// Lock kinds the tracker follows.
type lockKind string

const (
	lockStatus   lockKind = "status lock"
	lockProcess  lockKind = "process lock"
	lockMetadata lockKind = "metadata write lock"
)

type lockKey struct {
	kind lockKind
	id   string // container id; "" for the metadata lock
}

func (k lockKey) String() string {
	if k.id == "" {
		return "the " + string(k.kind)
	}
	return "the " + string(k.kind) + " of container " + shortID(k.id)
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// lockUse is one goroutine's use of a lock: waiting for it, then holding it.
type lockUse struct {
	t        *lockTracker
	key      lockKey
	gid      uint64
	op       string
	write    bool
	since    time.Time // asked for the lock
	heldFrom time.Time // zero while waiting
	detail   string
}

// shimCall is a daemon-side ttrpc call in flight.
type shimCall struct {
	id     string
	method string
	since  time.Time
}

// waitRecord is a finished wait, for the longest-recent-waits list.
type waitRecord struct {
	Lock   string        `json:"lock"`
	Op     string        `json:"op"`
	Waited time.Duration `json:"waited"`
	At     time.Time     `json:"at"`
}

// Bounds of the longest-recent-waits list.
const (
	recentWaits      = 20
	recentWaitWindow = 10 * time.Minute
)

// lockTracker knows, for every contended or written lock, who holds it and
// who waits, and for every goroutine its call in flight to a shim, so that
// blame can follow a wait from one lock to the next. Uncontended reads of
// a status lock are not tracked at all, so a healthy ListContainers pays
// only for a TryRLock.
type lockTracker struct {
	clock clock.Clock

	// statusWaited and statusHeld, when set (metrics.go), see every
	// tracked status-lock wait and hold; set before the tracker is used.
	statusWaited, statusHeld func(op string, d time.Duration)
	// timeline, when set (Options.Timeline), sees every tracked
	// status-lock hold with its container and times.
	timeline TimelineObserver

	mu     sync.Mutex
	locks  map[lockKey][]*lockUse
	calls  map[uint64]shimCall
	holds  map[uint64]faultHold
	recent []waitRecord
}

// faultHold is a goroutine held inside a delay or block fault, and the
// operation it was doing when the fault caught it.
type faultHold struct {
	faults.Hold
	op string
}

func newLockTracker(clk clock.Clock) *lockTracker {
	return &lockTracker{clock: clk, locks: map[lockKey][]*lockUse{}, calls: map[uint64]shimCall{}, holds: map[uint64]faultHold{}}
}

// faultHeld is the injector's hold observer (faults.Injector.OnHold): it
// runs in the held goroutine, so the hold can be matched to the locks and
// shim calls that goroutine has.
func (t *lockTracker) faultHeld(h faults.Hold) func() {
	gid := goid()
	fh := faultHold{Hold: h, op: callerOp()}
	t.mu.Lock()
	t.holds[gid] = fh
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		delete(t.holds, gid)
		t.mu.Unlock()
	}
}

func (t *lockTracker) track(key lockKey, op string, write bool) *lockUse {
	u := &lockUse{t: t, key: key, gid: goid(), op: op, write: write, since: t.clock.Now()}
	t.mu.Lock()
	t.locks[key] = append(t.locks[key], u)
	t.mu.Unlock()
	return u
}

func (u *lockUse) Acquired() {
	now := u.t.clock.Now()
	waited := now.Sub(u.since)
	u.t.mu.Lock()
	u.heldFrom = now
	if waited > time.Millisecond {
		u.t.recordWaitLocked(waitRecord{Lock: u.key.String(), Op: u.op, Waited: waited, At: now})
	}
	u.t.mu.Unlock()
	if u.key.kind == lockStatus && u.t.statusWaited != nil {
		u.t.statusWaited(u.op, waited)
	}
}

func (u *lockUse) Detail(what string) {
	u.t.mu.Lock()
	u.detail = what
	u.t.mu.Unlock()
}

func (u *lockUse) Released() {
	if u.key.kind == lockStatus && u.t.statusHeld != nil {
		// heldFrom was written by this goroutine in Acquired.
		u.t.statusHeld(u.op, u.t.clock.Since(u.heldFrom))
	}
	if u.key.kind == lockStatus && u.t.timeline != nil && !u.heldFrom.IsZero() {
		u.t.timeline.StatusLockHeld(u.key.id, u.op, u.heldFrom, u.t.clock.Now())
	}
	u.t.mu.Lock()
	defer u.t.mu.Unlock()
	uses := u.t.locks[u.key]
	for i, v := range uses {
		if v == u {
			uses = append(uses[:i], uses[i+1:]...)
			break
		}
	}
	if len(uses) == 0 {
		delete(u.t.locks, u.key)
	} else {
		u.t.locks[u.key] = uses
	}
}

func (t *lockTracker) recordWaitLocked(r waitRecord) {
	cutoff := r.At.Add(-recentWaitWindow)
	kept := t.recent[:0]
	for _, w := range t.recent {
		if w.At.After(cutoff) {
			kept = append(kept, w)
		}
	}
	kept = append(kept, r)
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Waited > kept[j].Waited })
	if len(kept) > recentWaits {
		kept = kept[:recentWaits]
	}
	t.recent = kept
}

// detailCurrent says what the calling goroutine is doing with a lock it
// holds (e.g. an unpack inside the metadata write transaction).
func (t *lockTracker) detailCurrent(key lockKey, what string) {
	gid := goid()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, u := range t.locks[key] {
		if u.gid == gid && !u.heldFrom.IsZero() {
			u.detail = what
		}
	}
}

// Start is shim.CallObserver: a daemon-side call to a shim begins.
func (t *lockTracker) Start(id, method string) func() {
	gid := goid()
	t.mu.Lock()
	t.calls[gid] = shimCall{id: id, method: method, since: t.clock.Now()}
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		delete(t.calls, gid)
		t.mu.Unlock()
	}
}

// processLocks is shim.LockObserver for in-process shims.
type processLocks struct{ t *lockTracker }

func (p processLocks) Track(id, op string, contended bool) shim.LockToken {
	return p.t.track(lockKey{lockProcess, id}, "shim "+op, true)
}

// metadataLocks is metadata.TxObserver: bbolt's single writer lock.
type metadataLocks struct{ t *lockTracker }

func (m metadataLocks) Requesting(ctx context.Context, op string) metadata.TxToken {
	return m.t.track(lockKey{kind: lockMetadata}, callerOp()+" ("+op+")", true)
}

// statusLocks is the status storage's LockObserver: fault points on every
// acquisition, tracking when the lock is written or contended.
type statusLocks struct{ c *criService }

func (s statusLocks) Requesting(id string, write bool) { s.c.fireStatusLock(id, write) }

func (s statusLocks) Track(id string, write, contended bool) containerstore.Token {
	if s.c.tracker == nil || (!write && !contended) {
		return nil
	}
	return s.c.tracker.track(lockKey{lockStatus, id}, callerOp(), write)
}

// callerOp names the operation a goroutine is doing: the outermost
// criService method on its stack (ListContainers, UpdateContainerResources,
// handleContainerExit, ...).
func callerOp() string {
	var pcs [48]uintptr
	n := runtime.Callers(3, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	op := ""
	const prefix = "github.com/fakecontainerd/fakecontainerd/server.(*criService)."
	for {
		f, more := frames.Next()
		if name, ok := strings.CutPrefix(f.Function, prefix); ok {
			op = strings.SplitN(name, ".", 2)[0]
		}
		if !more {
			break
		}
	}
	if op == "" {
		return "unknown"
	}
	return op
}

// goid is the calling goroutine's id, from its stack header. Go offers no
// cheaper way; it is only paid on contended or written locks.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	n, _ := strconv.ParseUint(string(b), 10, 64)
	return n
}

// BlameReport is what `fakecontainerd blame` shows.
type BlameReport struct {
	// Chains are the current wait-for chains, in plain words.
	Chains []string `json:"chains"`
	// Locks lists every tracked lock with its holders and waiters.
	Locks []LockReport `json:"locks"`
	// Longest are the longest waits of the last 10 minutes.
	Longest []waitRecord `json:"longest"`
	// Faults are the calls held inside delay or block faults now.
	Faults []FaultHoldEntry `json:"faults,omitempty"`
}

// LockReport is one lock's holders and waiters.
type LockReport struct {
	Lock    string     `json:"lock"`
	Holders []UseEntry `json:"holders"`
	Waiters []UseEntry `json:"waiters"`
}

// UseEntry is one holder or waiter.
type UseEntry struct {
	Op        string        `json:"op"`
	Goroutine uint64        `json:"goroutine"`
	For       time.Duration `json:"for"`
	Detail    string        `json:"detail,omitempty"`
	ShimCall  string        `json:"shim_call,omitempty"`
	// Fault names the delay or block fault the goroutine is inside now.
	Fault string `json:"fault,omitempty"`
}

// FaultHoldEntry is a call held inside a delay or block fault now.
type FaultHoldEntry struct {
	faults.Hold
	Op          string        `json:"op"`
	Goroutine   uint64        `json:"goroutine"`
	ContainerID string        `json:"container_id,omitempty"`
	For         time.Duration `json:"for"`
	// Holding are the tracked locks the held goroutine holds meanwhile.
	Holding []string `json:"holding,omitempty"`
}

// report builds the blame report from a consistent snapshot.
func (t *lockTracker) report() BlameReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	var rep BlameReport
	keys := make([]lockKey, 0, len(t.locks))
	for k := range t.locks {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	// shown are the held goroutines a chain names, so that the list of
	// calls held in faults does not repeat them.
	shown := map[uint64]bool{}
	for _, k := range keys {
		lr := LockReport{Lock: k.String()}
		for _, u := range t.locks[k] {
			e := UseEntry{Op: u.op, Goroutine: u.gid, Detail: u.detail}
			call, inCall := t.calls[u.gid]
			if inCall {
				e.ShimCall = call.method + " " + shortID(call.id)
			}
			if h, ok := t.holds[u.gid]; ok {
				e.Fault = h.String()
			} else if inCall {
				if _, h, ok := t.callHoldLocked(call); ok {
					e.Fault = h.String()
				}
			}
			if u.heldFrom.IsZero() {
				e.For = now.Sub(u.since)
				lr.Waiters = append(lr.Waiters, e)
			} else {
				e.For = now.Sub(u.heldFrom)
				lr.Holders = append(lr.Holders, e)
			}
		}
		rep.Locks = append(rep.Locks, lr)
		if len(lr.Waiters) > 0 {
			rep.Chains = append(rep.Chains, t.chainLocked(k, now, shown))
		}
	}
	rep.Faults = t.holdEntriesLocked(now)
	rep.Chains = append(rep.Chains, faultChains(rep.Faults, shown)...)
	rep.Longest = append(rep.Longest, t.recent...)
	return rep
}

// holdEntriesLocked lists the calls held in faults, oldest first, each
// with what it was doing: the CRI method it serves, or for a shim's
// goroutine the shim operation (its process lock's, or the point's).
func (t *lockTracker) holdEntriesLocked(now time.Time) []FaultHoldEntry {
	out := make([]FaultHoldEntry, 0, len(t.holds))
	for gid, h := range t.holds {
		e := FaultHoldEntry{Hold: h.Hold, Op: h.op, Goroutine: gid, ContainerID: h.Target.ContainerID, For: now.Sub(h.Since)}
		if e.ContainerID == "" {
			e.ContainerID = h.Target.SandboxID
		}
		if e.Op == "unknown" {
			e.Op = t.shimOpLocked(gid, h.Point)
		}
		for k, uses := range t.locks {
			for _, u := range uses {
				if u.gid == gid && !u.heldFrom.IsZero() {
					e.Holding = append(e.Holding, k.String())
				}
			}
		}
		sort.Strings(e.Holding)
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return out[i].Goroutine < out[j].Goroutine
	})
	return out
}

// shimOpLocked names what a goroutine outside the CRI service does: the
// op of a process lock it holds (shim Delete around the unmount), else the
// shim method of a shim.<Method> point.
func (t *lockTracker) shimOpLocked(gid uint64, point string) string {
	for k, uses := range t.locks {
		for _, u := range uses {
			if u.gid == gid && k.kind == lockProcess {
				return u.op
			}
		}
	}
	if m, ok := strings.CutPrefix(point, "shim."); ok && m != "unmount" {
		return "shim " + m
	}
	return "a call at " + point
}

// callHoldLocked finds the fault that holds a daemon call to a shim in the
// shim's own goroutine: a shim.<Method> fault on the call's container.
func (t *lockTracker) callHoldLocked(call shimCall) (uint64, faultHold, bool) {
	point := faults.ShimPoint(call.method)
	for gid, h := range t.holds {
		if h.Point == point && (h.Target.ContainerID == call.id || h.Target.SandboxID == call.id) {
			return gid, h, true
		}
	}
	return 0, faultHold{}, false
}

// faultChains says, in words, which calls faults hold that no lock chain
// has named: calls held in a fault are waits too. Calls of one operation
// in one fault on one object are grouped.
func faultChains(holds []FaultHoldEntry, shown map[uint64]bool) []string {
	type group struct {
		ops     []string
		hold    faults.Hold
		id      string
		longest time.Duration
		holding []string
		object  string // "container 1234abcd", "sandbox ...", or ""
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, h := range holds {
		if shown[h.Goroutine] {
			continue
		}
		key := h.FaultID + "\x00" + h.Point + "\x00" + h.ContainerID
		g, ok := byKey[key]
		if !ok {
			g = &group{hold: h.Hold, id: h.ContainerID}
			if g.id != "" {
				g.object = "container " + shortID(g.id)
				if h.Target.ContainerID == "" {
					g.object = "sandbox " + shortID(g.id)
				}
			}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.ops = append(g.ops, h.Op)
		g.longest = max(g.longest, h.For)
		for _, l := range h.Holding {
			if !slices.Contains(g.holding, l) {
				g.holding = append(g.holding, l)
			}
		}
	}
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		subject, verb := opsPhrase(g.ops)
		on := ""
		if g.object != "" {
			on = " on " + g.object
		}
		holding := ""
		if len(g.holding) > 0 {
			holding = ", holding " + strings.Join(g.holding, " and ")
		}
		out = append(out, fmt.Sprintf("%s %s inside %s%s, held up to %s%s.", subject, verb, g.hold, on, roundDuration(g.longest), holding))
	}
	return out
}

// chainLocked says, in words, why the waiters of key wait.
func (t *lockTracker) chainLocked(key lockKey, now time.Time, shown map[uint64]bool) string {
	var b strings.Builder
	var ops []string
	for _, u := range t.locks[key] {
		if u.heldFrom.IsZero() {
			ops = append(ops, u.op)
			shown[u.gid] = true
		}
	}
	subject, verb := opsPhrase(ops)
	b.WriteString(subject + " " + verb + " on ")
	b.WriteString(key.String())
	visited := map[lockKey]bool{}
	t.followLocked(&b, key, now, visited, shown)
	b.WriteString(".")
	return b.String()
}

// opsPhrase groups operations, first seen first, with the verb that
// agrees: "ListContainers (3 callers) waits", "ListContainers (29
// callers) and ContainerStatus (29 callers) wait".
func opsPhrase(ops []string) (subject, verb string) {
	count := map[string]int{}
	var order []string
	for _, op := range ops {
		if count[op] == 0 {
			order = append(order, op)
		}
		count[op]++
	}
	parts := make([]string, 0, len(order))
	for _, op := range order {
		if count[op] > 1 {
			parts = append(parts, fmt.Sprintf("%s (%d callers)", op, count[op]))
		} else {
			parts = append(parts, op)
		}
	}
	verb = "waits"
	if len(parts) > 1 {
		verb = "wait"
	}
	if len(parts) <= 2 {
		return strings.Join(parts, " and "), verb
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1], verb
}

// followLocked appends who holds key and what that holder waits on, lock
// after lock, until a holder waits on nothing. A holder inside a fault is
// held by the fault, not by its own work: the fault is named instead.
func (t *lockTracker) followLocked(b *strings.Builder, key lockKey, now time.Time, visited map[lockKey]bool, shown map[uint64]bool) {
	if visited[key] {
		b.WriteString(" (a cycle)")
		return
	}
	visited[key] = true
	var holder *lockUse
	for _, u := range t.locks[key] {
		if !u.heldFrom.IsZero() && (holder == nil || u.heldFrom.Before(holder.heldFrom)) {
			holder = u
		}
	}
	if holder == nil {
		b.WriteString(", which nobody holds now (its waiters are being let in)")
		return
	}
	shown[holder.gid] = true
	fmt.Fprintf(b, ", held %s by %s", roundDuration(now.Sub(holder.heldFrom)), holder.op)
	if h, ok := t.holds[holder.gid]; ok {
		fmt.Fprintf(b, ", inside %s for %s", h, roundDuration(now.Sub(h.Since)))
		return
	}
	if holder.detail != "" {
		b.WriteString(", " + holder.detail)
	}
	// The holder is in a call to a shim: follow it to the process lock.
	if call, ok := t.calls[holder.gid]; ok {
		fmt.Fprintf(b, ", which waits on shim %s", call.method)
		if gid, h, ok := t.callHoldLocked(call); ok {
			shown[gid] = true
			fmt.Fprintf(b, ", held inside %s for %s", h, roundDuration(now.Sub(h.Since)))
			return
		}
		pk := lockKey{lockProcess, call.id}
		if t.hasHolderLocked(pk) {
			b.WriteString(", which waits on the process lock")
			if pk.id != key.id {
				b.WriteString(" of container " + shortID(pk.id))
			}
			t.followLocked(b, pk, now, visited, shown)
		}
		return
	}
	// The holder waits for another lock.
	for k, uses := range t.locks {
		for _, u := range uses {
			if u.gid == holder.gid && u.heldFrom.IsZero() {
				fmt.Fprintf(b, ", which waits on %s", k)
				t.followLocked(b, k, now, visited, shown)
				return
			}
		}
	}
}

func (t *lockTracker) hasHolderLocked(k lockKey) bool {
	for _, u := range t.locks[k] {
		if !u.heldFrom.IsZero() {
			return true
		}
	}
	return false
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}
