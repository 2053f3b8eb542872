package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fakecontainerd/fakecontainerd/e2e/kubelet/incident"
)

// watcher polls the API server once a second and keeps, for every node,
// its Ready condition's windows (times from the condition's
// lastTransitionTime, as the API records them), its taints, and its pods'
// phases and restarts; every change goes on one timeline for all nodes.
type watcher struct {
	c     *cluster
	nodes map[string]bool // the nodes watched; their pods too

	mu    sync.Mutex
	tl    []event
	state map[string]*nodeState
	pods  map[string]podState // namespace/name
	hist  map[string]*podHist // namespace/name, kept after the pod is gone
	polls int
	errs  int
}

// podHist is what a pod went through while watched.
type podHist struct {
	labels       map[string]string
	last         podState
	wasReady     bool      // seen Ready=True
	notReadySeen bool      // seen Ready=False after Ready=True
	deletedSeen  time.Time // first seen Terminating
	goneAt       time.Time // left the API
}

type event struct {
	at   time.Time
	node string
	what string
}

type nodeState struct {
	name, arm string
	ready     condition
	windows   []window
	taints    string
	taintSeen []string // every taint set seen, in order
	// The longest the Ready condition's lastHeartbeatTime and the node
	// Lease's renewTime lagged behind the clock at a poll.
	hbStale, leaseStale time.Duration
	leaseRenew          time.Time
}

// window is a time the node's Ready condition was not True.
type window struct {
	status            string // False or Unknown
	from, to          time.Time
	firstMsg, lastMsg string
	reason            string
	messages          int // distinct messages seen: kubelet re-posts the age every 10 s
	// The longest the Ready condition's lastHeartbeatTime and the node
	// Lease's renewTime lagged behind the clock during the window.
	hbLag, leaseLag time.Duration
}

type podState struct {
	node, phase, ready string
	restarts           int
	terminating        bool // deleted, kubelet has not confirmed it gone yet
}

func (p podState) String() string {
	s := fmt.Sprintf("phase %s, Ready=%s, restarts %d", p.phase, p.ready, p.restarts)
	if p.terminating {
		s += ", Terminating"
	}
	return s
}

func newWatcher(c *cluster, nodes []string) *watcher {
	w := &watcher{c: c, nodes: map[string]bool{}, state: map[string]*nodeState{}, pods: map[string]podState{}, hist: map[string]*podHist{}}
	for _, n := range nodes {
		w.nodes[n] = true
		w.state[n] = &nodeState{name: n, arm: c.arm(n)}
	}
	return w
}

func (w *watcher) add(at time.Time, node, format string, args ...any) {
	w.tl = append(w.tl, event{at: at, node: node, what: fmt.Sprintf(format, args...)})
}

// note puts a line of the caller's on the timeline.
func (w *watcher) note(at time.Time, node, format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.add(at, node, format, args...)
}

// run polls now and then once a second until ctx ends.
func (w *watcher) run(ctx context.Context, wg *sync.WaitGroup) {
	w.poll(ctx)
	incident.Every(ctx, wg, time.Second, func() { w.poll(ctx) })
}

func (w *watcher) poll(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nodes, nerr := w.c.nodes(cctx, "")
	pods, perr := w.c.pods(cctx, "")
	leases, lerr := w.c.leases(cctx)
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	if nerr != nil || perr != nil {
		w.errs++
		return
	}
	for _, n := range nodes {
		st := w.state[n.Metadata.Name]
		if st == nil {
			continue
		}
		w.observeNode(st, n, now)
	}
	if lerr == nil {
		for _, l := range leases {
			if st := w.state[l.Metadata.Name]; st != nil && l.Spec.RenewTime != nil {
				st.leaseRenew = *l.Spec.RenewTime
				lag := now.Sub(*l.Spec.RenewTime)
				st.leaseStale = max(st.leaseStale, lag)
				if last := len(st.windows) - 1; last >= 0 && st.windows[last].to.IsZero() {
					st.windows[last].leaseLag = max(st.windows[last].leaseLag, lag)
				}
			}
		}
	}
	w.observePods(pods, now)
}

// observePods records the watched nodes' pods; w.mu is held.
func (w *watcher) observePods(pods []apiPod, now time.Time) {
	seen := map[string]bool{}
	for _, p := range pods {
		if !w.nodes[p.Spec.NodeName] {
			continue
		}
		key := p.Metadata.Namespace + "/" + p.Metadata.Name
		seen[key] = true
		ps := podState{node: p.Spec.NodeName, phase: p.Status.Phase, ready: p.readyCond(), restarts: p.restarts(), terminating: p.Metadata.DeletionTimestamp != nil}
		old, seen := w.pods[key]
		if !seen || old != ps {
			w.add(now, ps.node, "pod %s: %s", p.Metadata.Name, ps)
		}
		w.pods[key] = ps
		h := w.hist[key]
		if h == nil {
			h = &podHist{}
			w.hist[key] = h
		}
		h.labels, h.last = p.Metadata.Labels, ps
		switch ps.ready {
		case "True":
			h.wasReady = true
		case "False":
			h.notReadySeen = h.notReadySeen || h.wasReady
		}
		if ps.terminating && h.deletedSeen.IsZero() {
			h.deletedSeen = now
		}
	}
	for key, ps := range w.pods {
		if !seen[key] {
			w.add(now, ps.node, "pod %s: gone from the API", key[strings.IndexByte(key, '/')+1:])
			delete(w.pods, key)
			if h := w.hist[key]; h != nil {
				h.goneAt = now
			}
		}
	}
}

// history is a copy of every pod's history.
func (w *watcher) history() map[string]podHist {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]podHist{}
	for k, h := range w.hist {
		out[k] = *h
	}
	return out
}

// staleness is the node's longest heartbeat and lease lag seen.
func (w *watcher) staleness(node string) (heartbeat, lease time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.state[node]
	return st.hbStale, st.leaseStale
}

func (w *watcher) observeNode(st *nodeState, n apiNode, now time.Time) {
	r := n.ready()
	first := st.ready.Status == ""
	if first || r.Status != st.ready.Status {
		at := r.LastTransitionTime
		if at.IsZero() {
			at = now
		}
		w.add(at, st.name, "Ready=%s reason=%s message=%q", r.Status, r.Reason, r.Message)
		if last := len(st.windows) - 1; last >= 0 && st.windows[last].to.IsZero() && r.Status == "True" {
			st.windows[last].to = at
		}
		if r.Status != "True" && !first {
			st.windows = append(st.windows, window{status: r.Status, from: at, reason: r.Reason, firstMsg: r.Message})
		}
	}
	if last := len(st.windows) - 1; last >= 0 && st.windows[last].to.IsZero() && r.Status != "True" {
		win := &st.windows[last]
		if r.Message != win.lastMsg {
			win.messages++
		}
		win.lastMsg = r.Message
		win.status = r.Status
		if !r.LastHeartbeatTime.IsZero() {
			win.hbLag = max(win.hbLag, now.Sub(r.LastHeartbeatTime))
		}
	}
	st.ready = r
	if !r.LastHeartbeatTime.IsZero() {
		st.hbStale = max(st.hbStale, now.Sub(r.LastHeartbeatTime))
	}
	if t := n.taints(); t != st.taints {
		if st.taints != "" || t != "none" {
			w.add(now, st.name, "taints: %s", t)
		}
		st.taints = t
		st.taintSeen = append(st.taintSeen, t)
	}
}

// timeline is every node's events in time order, as offsets from t0.
func (w *watcher) timeline(t0 time.Time) string {
	w.mu.Lock()
	es := slices.Clone(w.tl)
	w.mu.Unlock()
	slices.SortStableFunc(es, func(a, b event) int { return a.at.Compare(b.at) })
	width := 4
	for n := range w.nodes {
		width = max(width, len(n))
	}
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s %+8.1fs  %-*s  %s\n", e.at.Format("15:04:05"), e.at.Sub(t0).Seconds(), width, e.node, e.what)
	}
	return b.String()
}

// notReady is the node's windows that began at or after since.
func (w *watcher) notReady(node string, since time.Time) []window {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []window
	for _, win := range w.state[node].windows {
		if !win.from.Before(since.Truncate(time.Second)) {
			out = append(out, win)
		}
	}
	return out
}

func (w *watcher) current(node string) (condition, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.state[node]
	return st.ready, slices.Clone(st.taintSeen)
}

func (w *watcher) podsOn(node string) map[string]podState {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]podState{}
	for k, p := range w.pods {
		if p.node == node {
			out[k] = p
		}
	}
	return out
}

// summary is one node's block of the report.
func (w *watcher) summary(node string, since, t0 time.Time) string {
	var b strings.Builder
	ready, taints := w.current(node)
	wins := w.notReady(node, since)
	fmt.Fprintf(&b, "  Ready now: %s", ready.Status)
	if ready.Status != "True" {
		fmt.Fprintf(&b, " (%s: %s)", ready.Reason, ready.Message)
	}
	b.WriteString("\n")
	if len(wins) == 0 {
		b.WriteString("  NotReady windows: none\n")
	}
	for _, win := range wins {
		to, dur := "still", time.Since(win.from)
		if !win.to.IsZero() {
			to, dur = fmt.Sprintf("%+.0fs", win.to.Sub(t0).Seconds()), win.to.Sub(win.from)
		}
		fmt.Fprintf(&b, "  NotReady window: Ready=%s from %+.0fs to %s (%.0fs), reason %s; heartbeat lag up to %.0fs, lease lag up to %.0fs\n",
			win.status, win.from.Sub(t0).Seconds(), to, dur.Seconds(), win.reason, win.hbLag.Seconds(), win.leaseLag.Seconds())
		fmt.Fprintf(&b, "    first message: %s\n", win.firstMsg)
		if win.lastMsg != win.firstMsg {
			fmt.Fprintf(&b, "    last message:  %s (%d distinct messages seen)\n", win.lastMsg, win.messages)
		}
	}
	fmt.Fprintf(&b, "  taints seen: %s\n", strings.Join(taints, " -> "))
	pods := w.podsOn(node)
	keys := make([]string, 0, len(pods))
	for k := range pods {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := pods[k]
		fmt.Fprintf(&b, "  pod %s: %s\n", k, p)
	}
	return b.String()
}
