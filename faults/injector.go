package faults

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// Fault is one armed fault: a spec at a point, for the targets a selector
// picks. Its term state advances each time it fires.
type Fault struct {
	ID       string
	Point    string
	Selector Selector
	Spec     Spec
	// Source says who set it: config, api, annotation or scenario.
	Source string

	mu      sync.Mutex
	term    int // index of the current term
	used    int // firings of the current term
	fired   uint64
	waiting int
	release chan struct{} // closed by Release and by Clear
	cleared chan struct{}
}

// Info is a fault as List reports it.
type Info struct {
	ID      string `json:"id"`
	Point   string `json:"point"`
	Target  string `json:"target"`
	Spec    string `json:"spec"`
	Source  string `json:"source"`
	Current string `json:"current"`
	Fired   uint64 `json:"fired"`
	Blocked int    `json:"blocked"`
}

// Firing is one fault acting at a point, for observers.
type Firing struct {
	Point   string
	FaultID string
	Target  Target
	Action  string
	At      time.Time
}

// Hold is a delay or block fault holding a call now: the call is inside
// the fault, not in the work the point stands for.
type Hold struct {
	FaultID string `json:"fault"`
	Point   string `json:"point"`
	// Spec is the fault's whole spec, Action the term that holds.
	Spec   string    `json:"spec"`
	Action string    `json:"action"`
	Target Target    `json:"-"`
	Since  time.Time `json:"since"`
}

// String names the fault as blame shows it: "fault f3 (shim.unmount delay(2m))".
func (h Hold) String() string {
	return fmt.Sprintf("fault %s (%s %s)", h.FaultID, h.Point, h.Action)
}

// Injector holds the armed faults and fires them at points.
type Injector struct {
	clock    clock.Clock
	log      *logrus.Entry
	lifetime context.Context
	stop     context.CancelFunc

	mu     sync.Mutex
	faults []*Fault
	nextID int
	// rng has its own lock: step rolls it while holding a fault's lock,
	// and List, Clear and Release take mu and then each fault's lock, so
	// rolling under mu would deadlock them.
	rngMu sync.Mutex
	rng   *rand.Rand
	// byPoint is an immutable index rebuilt on every change, so the fast
	// path (no fault at this point) costs one atomic load and a map lookup.
	byPoint atomic.Pointer[map[string][]*Fault]

	countsMu sync.Mutex
	counts   map[string]uint64 // firings by point

	observersMu sync.RWMutex
	observers   []func(Firing)
	holders     []func(Hold) (done func())

	// allowPanic says where a panic action may be armed.
	allowPanic func(point string) bool
	// exit carries out exit actions (SetExitHandler).
	exit atomic.Pointer[ExitHandler]
}

// ExitHandler makes the process of a fault's target exit now with status:
// the server's, which finds the target's task and has its shim end it.
type ExitHandler func(t Target, status uint32) error

// SetExitHandler sets what carries out exit actions. Without one, an exit
// action is logged and does nothing.
func (in *Injector) SetExitHandler(h ExitHandler) { in.exit.Store(&h) }

// Option configures an Injector.
type Option func(*Injector)

// WithPanicAt allows panic actions at the points for which allow is true
// (panics model real crashes only).
func WithPanicAt(allow func(point string) bool) Option {
	return func(in *Injector) { in.allowPanic = allow }
}

// New returns an Injector with no faults. Delays and blocks end when Close
// is called.
func New(clk clock.Clock, log *logrus.Entry, opts ...Option) *Injector {
	lifetime, stop := context.WithCancel(context.Background())
	in := &Injector{
		clock: clk, log: log, lifetime: lifetime, stop: stop,
		rng:        rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed)),
		counts:     map[string]uint64{},
		allowPanic: func(string) bool { return false },
	}
	for _, o := range opts {
		o(in)
	}
	in.byPoint.Store(&map[string][]*Fault{})
	return in
}

// Close releases every delay and block in progress.
func (in *Injector) Close() { in.stop() }

// Observe registers a function called on every firing (metrics, timelines).
func (in *Injector) Observe(f func(Firing)) {
	in.observersMu.Lock()
	defer in.observersMu.Unlock()
	in.observers = append(in.observers, f)
}

// OnHold registers f, called in the held goroutine as a delay or block
// begins (so f may look at that goroutine, as blame does); the func it
// returns, if not nil, is called when the hold ends.
func (in *Injector) OnHold(f func(Hold) (done func())) {
	in.observersMu.Lock()
	defer in.observersMu.Unlock()
	in.holders = append(in.holders, f)
}

// Add arms a fault. The spec and point are validated; the returned Info
// carries the fault's id.
func (in *Injector) Add(point string, sel Selector, spec, source string) (Info, error) {
	if err := ValidatePoint(point); err != nil {
		return Info{}, err
	}
	parsed, err := ParseSpec(spec)
	if err != nil {
		return Info{}, err
	}
	for _, t := range parsed {
		if t.Kind == KindPanic && !(panicAllowed(point) && in.allowPanic(point)) {
			return Info{}, fmt.Errorf("fault at %s: panic models a shim process crash; it is allowed only at shim.* points with shim_mode = \"process\"", point)
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.nextID++
	f := &Fault{
		ID: "f" + strconv.Itoa(in.nextID), Point: point, Selector: sel, Spec: parsed, Source: source,
		release: make(chan struct{}), cleared: make(chan struct{}),
	}
	in.faults = append(in.faults, f)
	in.reindexLocked()
	in.log.WithFields(logrus.Fields{"fault": f.ID, "point": point, "target": sel.String(), "spec": parsed.String(), "source": source}).Info("fault armed")
	return f.info(), nil
}

func (in *Injector) reindexLocked() {
	idx := map[string][]*Fault{}
	for _, f := range in.faults {
		idx[f.Point] = append(idx[f.Point], f)
	}
	in.byPoint.Store(&idx)
}

// Clear disarms the faults with the given ids (all faults if none given)
// and lets go of everything they block. Unknown ids are an error.
func (in *Injector) Clear(ids ...string) ([]Info, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	// Check every id first: a call naming an unknown id changes nothing.
	unknown := maps.Clone(want)
	for _, f := range in.faults {
		delete(unknown, f.ID)
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("no fault with id %s", strings.Join(keysOf(unknown), ", "))
	}
	keep := in.faults[:0:0]
	var removed []Info
	for _, f := range in.faults {
		if len(ids) == 0 || want[f.ID] {
			removed = append(removed, f.info())
			close(f.cleared)
			continue
		}
		keep = append(keep, f)
	}
	in.faults = keep
	in.reindexLocked()
	return removed, nil
}

// ClearWhere disarms the faults match picks (e.g. those armed from the
// annotations of a container being removed).
func (in *Injector) ClearWhere(match func(Info) bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	keep := in.faults[:0:0]
	for _, f := range in.faults {
		if match(f.info()) {
			close(f.cleared)
			continue
		}
		keep = append(keep, f)
	}
	in.faults = keep
	in.reindexLocked()
}

// Release lets go of the calls a block fault holds now (all faults if no id
// is given); the fault stays armed. It returns how many calls were released.
func (in *Injector) Release(ids ...string) (int, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	for _, f := range in.faults {
		if len(ids) > 0 && !want[f.ID] {
			continue
		}
		delete(want, f.ID)
		f.mu.Lock()
		n += f.waiting
		close(f.release)
		f.release = make(chan struct{})
		f.mu.Unlock()
	}
	if len(want) > 0 {
		return n, fmt.Errorf("no fault with id %s", strings.Join(keysOf(want), ", "))
	}
	return n, nil
}

// List reports the armed faults in the order they were added.
func (in *Injector) List() []Info {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]Info, 0, len(in.faults))
	for _, f := range in.faults {
		out = append(out, f.info())
	}
	return out
}

// Counts reports how often faults fired, by point.
func (in *Injector) Counts() map[string]uint64 {
	in.countsMu.Lock()
	defer in.countsMu.Unlock()
	out := make(map[string]uint64, len(in.counts))
	for k, v := range in.counts {
		out[k] = v
	}
	return out
}

func (f *Fault) info() Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := "off"
	if f.term < len(f.Spec) {
		cur = f.Spec[f.term].String()
	}
	return Info{
		ID: f.ID, Point: f.Point, Target: f.Selector.String(), Spec: f.Spec.String(), Source: f.Source,
		Current: cur, Fired: f.fired, Blocked: f.waiting,
	}
}

// Active reports whether any fault is armed at point: the cheap check for
// callers that must build a Target first.
func (in *Injector) Active(point string) bool {
	if in == nil {
		return false
	}
	return len((*in.byPoint.Load())[point]) > 0
}

// Fire runs the faults armed at point for target t, in the order they were
// added. A delay or block holds the calling goroutine as the real slow
// operation would: it does not end when the caller's ctx does (a syscall
// does not either), only when the fault is released or cleared or the
// injector closes. An error action returns the error; later faults at the
// point do not run. A nil Injector fires nothing.
func (in *Injector) Fire(ctx context.Context, point string, t Target) error {
	if in == nil {
		return nil
	}
	for _, f := range (*in.byPoint.Load())[point] {
		if !f.Selector.Matches(t) {
			continue
		}
		term, ok := f.step(in)
		if !ok {
			continue
		}
		if err := in.act(f, term, point, t); err != nil {
			return err
		}
	}
	return nil
}

// step advances the fault's term state and returns the term to act on.
func (f *Fault) step(in *Injector) (Term, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.term >= len(f.Spec) {
		return Term{}, false
	}
	t := f.Spec[f.term]
	f.used++
	if t.Count > 0 && f.used >= t.Count {
		f.term++
		f.used = 0
	}
	if t.Kind == KindOff {
		return t, false
	}
	if t.Percent < 100 {
		in.rngMu.Lock()
		roll := in.rng.Float64() * 100
		in.rngMu.Unlock()
		if roll >= t.Percent {
			return t, false
		}
	}
	f.fired++
	return t, true
}

func (in *Injector) act(f *Fault, t Term, point string, target Target) error {
	in.record(f, t, point, target)
	if t.Kind == KindDelay || t.Kind == KindBlock {
		defer in.hold(f, t, point, target)()
	}
	switch t.Kind {
	case KindDelay:
		d := t.Delay
		if t.Jitter > 0 {
			in.rngMu.Lock()
			d += time.Duration((in.rng.Float64()*2 - 1) * float64(t.Jitter))
			in.rngMu.Unlock()
		}
		select {
		case <-in.clock.After(max(d, 0)):
		case <-f.cleared:
		case <-in.lifetime.Done():
		}
	case KindBlock:
		f.mu.Lock()
		f.waiting++
		release := f.release
		f.mu.Unlock()
		select {
		case <-release:
		case <-f.cleared:
		case <-in.lifetime.Done():
		}
		f.mu.Lock()
		f.waiting--
		f.mu.Unlock()
	case KindError:
		msg := t.Message
		if msg == "" {
			msg = fmt.Sprintf("injected %s at %s", t.Code, point)
		}
		return &Error{Code: t.Code, Point: point, Message: msg}
	case KindPanic:
		panic(fmt.Sprintf("fakecontainerd fault %s at %s: %s", f.ID, point, t.Message))
	case KindExit:
		// The call at the point goes on: the process dies beside it, as a
		// kill -9 from the node does; the shim processes the exit later.
		log := in.log.WithFields(logrus.Fields{"fault": f.ID, "point": point, "target": target.String()})
		h := in.exit.Load()
		if h == nil {
			log.Warn("exit fault fired, but nothing here can end a process")
			return nil
		}
		if err := (*h)(target, t.ExitStatus); err != nil {
			log.WithError(err).Warn("exit fault: the target's process did not exit")
		}
	}
	return nil
}

func (in *Injector) record(f *Fault, t Term, point string, target Target) {
	in.countsMu.Lock()
	in.counts[point]++
	in.countsMu.Unlock()
	in.log.WithFields(logrus.Fields{"fault": f.ID, "point": point, "target": target.String(), "action": t.String()}).Info("fault fired")
	in.observersMu.RLock()
	obs := in.observers
	in.observersMu.RUnlock()
	if len(obs) == 0 {
		return
	}
	fi := Firing{Point: point, FaultID: f.ID, Target: target, Action: t.String(), At: in.clock.Now()}
	for _, o := range obs {
		o(fi)
	}
}

// hold tells the hold observers that f holds the calling goroutine and
// returns what tells them it is over.
func (in *Injector) hold(f *Fault, t Term, point string, target Target) func() {
	in.observersMu.RLock()
	hs := in.holders
	in.observersMu.RUnlock()
	if len(hs) == 0 {
		return func() {}
	}
	h := Hold{FaultID: f.ID, Point: point, Spec: f.Spec.String(), Action: t.String(), Target: target, Since: in.clock.Now()}
	dones := make([]func(), 0, len(hs))
	for _, o := range hs {
		if done := o(h); done != nil {
			dones = append(dones, done)
		}
	}
	return func() {
		for _, done := range dones {
			done()
		}
	}
}

// Error is an injected error. It carries a gRPC code, which the CRI server
// returns to its caller and the shim sends over ttrpc.
type Error struct {
	Code    codes.Code
	Point   string
	Message string
}

func (e *Error) Error() string              { return e.Message }
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
